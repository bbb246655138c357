//! Turning a kubeconfig into a client, with the checks that need no network:
//! the client certificate's validity window is checked before any call.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::PlatformError;

/// A client and the server address it talks to (for messages).
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    pub server: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.server)
            .finish()
    }
}

fn kc_err(reason: impl Into<String>) -> PlatformError {
    PlatformError::Kubeconfig {
        reason: reason.into(),
    }
}

fn fmt_time(secs: i64) -> String {
    // RFC 3339 in UTC without pulling a date crate: civil-from-days.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Check the current context's client certificate (if it uses one) is valid at `now`.
pub fn check_client_certificate(kc: &Kubeconfig, now: SystemTime) -> Result<(), PlatformError> {
    let ctx_name = kc
        .current_context
        .clone()
        .ok_or_else(|| kc_err("no current-context is set"))?;
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| kc_err(format!("current-context `{ctx_name}` is not defined")))?;
    let user = ctx.user.clone().unwrap_or_default();
    let Some(auth) = kc
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.clone())
    else {
        return Err(kc_err(format!(
            "user `{user}` of context `{ctx_name}` is not defined"
        )));
    };
    let pem = if let Some(data) = &auth.client_certificate_data {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| {
                kc_err(format!(
                    "user `{user}`: client-certificate-data is not base64: {e}"
                ))
            })?
    } else if let Some(path) = &auth.client_certificate {
        std::fs::read(path).map_err(|e| {
            kc_err(format!(
                "user `{user}`: cannot read client-certificate {path}: {e}"
            ))
        })?
    } else {
        return Ok(()); // token or exec auth: nothing to check locally
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| kc_err(format!("user `{user}`: client certificate is not PEM: {e}")))?;
    let cert = pem.parse_x509().map_err(|e| {
        kc_err(format!(
            "user `{user}`: client certificate does not parse: {e}"
        ))
    })?;
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    if now_s > na {
        return Err(PlatformError::KubeconfigExpired {
            user,
            not_after: fmt_time(na),
            now: fmt_time(now_s),
        });
    }
    if now_s < nb {
        return Err(kc_err(format!(
            "user `{user}`: client certificate is not valid before {} (now {}); check the clock",
            fmt_time(nb),
            fmt_time(now_s)
        )));
    }
    Ok(())
}

/// Build a connection from kubeconfig YAML, checking the certificate first.
pub async fn connect(kubeconfig_yaml: &str, now: SystemTime) -> Result<Connection, PlatformError> {
    // kube builds its rustls config with the process-wide crypto provider;
    // if more than one provider is compiled in (another crate enabling
    // aws-lc-rs), rustls cannot pick one and panics. Pick ring explicitly;
    // an already installed provider is kept.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = Kubeconfig::from_yaml(kubeconfig_yaml)
        .map_err(|e| kc_err(format!("does not parse: {e}")))?;
    check_client_certificate(&kc, now)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| kc_err(e.to_string()))?;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|e| kc_err(format!("cannot build a client: {e}")))?;
    Ok(Connection { client, server })
}

#[cfg(test)]
mod tests {
    use super::fmt_time;
    #[test]
    fn formats_times() {
        assert_eq!(fmt_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(fmt_time(951_782_400), "2000-02-29T00:00:00Z");
    }
}
