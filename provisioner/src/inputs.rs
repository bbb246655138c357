//! Where the platform's secret inputs come from.
//!
//! The bootstrap Secrets in `infra/bootstrap/` carry no data, only the inputs
//! they need (`platform.shopedge.dev/secret-inputs`). `up` supplies each one
//! from the place it naturally lives:
//!
//! - `hcloud.token`: the Hetzner token `up` itself runs with (`HCLOUD_TOKEN` or
//!   `--token-file`); `hcloud.network`: the cluster's network (its name);
//! - `cloudflared.tunnel-token`: read from the Cloudflare API after the tunnel
//!   step, held in memory only;
//! - everything else: the environment's age-encrypted secrets file
//!   (`infra/secrets/edge.<env>.age`) under `PROVISION_<INPUT>` (dots and
//!   dashes as `_`; `secrets push` never sends `PROVISION_` names to the
//!   Worker). Passwords the cluster alone uses are generated there on the
//!   first `up` and kept; credentials issued elsewhere (the Backblaze B2 keys)
//!   must be stored with `provisioner secrets set` first.
//!
//! [`resolve`] is pure: it takes the decrypted file and returns the values,
//! the entries it generated, and what is missing.

use std::collections::BTreeMap;

use platform::{InputUse, SecretValue};
use tunnel::secrets::store::SecretMap;
use tunnel::SecretString;

/// Names of the provisioner-only entries of the secrets file start with this.
pub const FILE_PREFIX: &str = "PROVISION_";
/// The input the tunnel step supplies.
pub const TUNNEL_TOKEN: &str = "cloudflared.tunnel-token";

/// Where one input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The Hetzner API token of this run.
    HcloudToken,
    /// The cluster's private network (by name).
    Network,
    /// The tunnel token from the Cloudflare API.
    TunnelToken,
    /// An entry of the secrets file, generated when missing if `generate` is set.
    File {
        name: String,
        generate: Option<Generate>,
    },
}

/// How a missing file entry is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    /// 32 random bytes, hex: for passwords and signing secrets only the cluster uses.
    Random,
    /// A fixed, non-secret default (user names).
    Fixed(&'static str),
}

/// The secrets-file name of an input: `b2.key-id` -> `PROVISION_B2_KEY_ID`.
pub fn file_name(input: &str) -> String {
    // The Postgres password is shared with Hyperdrive, whose spec reads
    // `PROVISION_POSTGRES_PASSWORD` by default.
    if input == "postgres.medusa-password" {
        return "PROVISION_POSTGRES_PASSWORD".into();
    }
    let mut n = String::from(FILE_PREFIX);
    for c in input.chars() {
        n.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    n
}

/// Where `input` comes from.
pub fn source_of(input: &str) -> Source {
    let generate = match input {
        "hcloud.token" => return Source::HcloudToken,
        "hcloud.network" => return Source::Network,
        TUNNEL_TOKEN => return Source::TunnelToken,
        "grafana.admin-user" => Some(Generate::Fixed("admin")),
        "postgres.medusa-user" => Some(Generate::Fixed("medusa")),
        "redis.password"
        | "medusa.jwt-secret"
        | "medusa.cookie-secret"
        | "grafana.admin-password"
        | "postgres.medusa-password" => Some(Generate::Random),
        _ => None,
    };
    Source::File {
        name: file_name(input),
        generate,
    }
}

/// What [`resolve`] found.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Input -> value, for `PlanInputs::secrets` (all but the tunnel token).
    pub values: BTreeMap<String, SecretValue>,
    /// File entries generated now (the caller saves the file).
    pub generated: Vec<String>,
    /// Whether some Secret needs the tunnel token.
    pub needs_tunnel_token: bool,
    /// One message per missing input, naming the Secret and the fix.
    pub missing: Vec<String>,
}

/// Gathers the inputs `uses` names. `file` is the decrypted secrets file;
/// generated entries are added to it. `random` makes one random value.
pub fn resolve(
    uses: &[InputUse],
    file: &mut SecretMap,
    hcloud_token: &str,
    network: &str,
    environment: &str,
    random: &mut dyn FnMut() -> String,
) -> Resolved {
    let mut r = Resolved::default();
    for u in uses {
        if r.values.contains_key(&u.input) {
            continue;
        }
        let value = match source_of(&u.input) {
            Source::HcloudToken => hcloud_token.to_string(),
            Source::Network => network.to_string(),
            Source::TunnelToken => {
                r.needs_tunnel_token = true;
                continue;
            }
            Source::File { name, generate } => match (file.get(&name), generate) {
                (Some(v), _) => v.expose().to_string(),
                (None, Some(g)) => {
                    let v = match g {
                        Generate::Random => random(),
                        Generate::Fixed(s) => s.to_string(),
                    };
                    file.insert(name.clone(), SecretString::new(v.clone()));
                    r.generated.push(name);
                    v
                }
                (None, None) => {
                    let needed_by = uses
                        .iter()
                        .filter(|x| x.input == u.input)
                        .map(|x| format!("{} ({})", x.object, x.location))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let msg = format!(
                        "secret input `{}` needed by {needed_by}: store it with `printf %s \"$VALUE\" | provisioner secrets set --env {environment} {name}`",
                        u.input
                    );
                    if !r.missing.contains(&msg) {
                        r.missing.push(msg);
                    }
                    continue;
                }
            },
        };
        r.values.insert(u.input.clone(), SecretValue::new(value));
    }
    r
}

/// 32 random bytes as hex.
pub fn random_hex() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::manifest::ObjectRef;

    fn uses(inputs: &[&str]) -> Vec<InputUse> {
        inputs
            .iter()
            .map(|i| InputUse {
                input: i.to_string(),
                object: ObjectRef {
                    api_version: "v1".into(),
                    kind: "Secret".into(),
                    namespace: Some("data".into()),
                    name: "s".into(),
                },
                location: "bootstrap/40-namespaces/secrets.yaml".into(),
            })
            .collect()
    }

    #[test]
    fn names_follow_the_convention() {
        assert_eq!(file_name("b2.key-id"), "PROVISION_B2_KEY_ID");
        assert_eq!(
            file_name("postgres.medusa-password"),
            "PROVISION_POSTGRES_PASSWORD"
        );
        for i in ["b2.key-id", "medusa.jwt-secret", "postgres.medusa-password"] {
            assert!(tunnel::secrets::valid_name(&file_name(i)), "{i}");
        }
    }

    #[test]
    fn resolves_generates_and_names_what_is_missing() {
        let mut file = SecretMap::new();
        file.insert("PROVISION_B2_KEY_ID".into(), SecretString::new("kid"));
        let mut n = 0;
        let mut rnd = || {
            n += 1;
            format!("r{n}")
        };
        let r = resolve(
            &uses(&[
                "hcloud.token",
                "hcloud.network",
                TUNNEL_TOKEN,
                "b2.key-id",
                "b2.application-key",
                "redis.password",
                "redis.password",
                "grafana.admin-user",
            ]),
            &mut file,
            "tok",
            "shop",
            "production",
            &mut rnd,
        );
        let v = |k: &str| r.values.get(k).map(|v| v.expose().to_string());
        assert_eq!(v("hcloud.token").as_deref(), Some("tok"));
        assert_eq!(v("hcloud.network").as_deref(), Some("shop"));
        assert_eq!(v("b2.key-id").as_deref(), Some("kid"));
        assert_eq!(v("redis.password").as_deref(), Some("r1"));
        assert_eq!(v("grafana.admin-user").as_deref(), Some("admin"));
        assert!(r.needs_tunnel_token && v(TUNNEL_TOKEN).is_none());
        assert_eq!(
            r.generated,
            ["PROVISION_REDIS_PASSWORD", "PROVISION_GRAFANA_ADMIN_USER"]
        );
        assert_eq!(
            file.get("PROVISION_REDIS_PASSWORD").map(|s| s.expose()),
            Some("r1")
        );
        assert_eq!(r.missing.len(), 1);
        assert!(
            r.missing[0].contains("`b2.application-key` needed by Secret data/s (bootstrap/40")
                && r.missing[0]
                    .contains("secrets set --env production PROVISION_B2_APPLICATION_KEY"),
            "{}",
            r.missing[0]
        );
        // A second run generates nothing: the values persist.
        let r2 = resolve(
            &uses(&["redis.password"]),
            &mut file,
            "tok",
            "shop",
            "production",
            &mut rnd,
        );
        assert!(r2.generated.is_empty());
        assert_eq!(
            r2.values.get("redis.password").map(|v| v.expose()),
            Some("r1")
        );
    }

    #[test]
    fn random_values_are_long_and_distinct() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
