//! HTTPS for the fake API server, like a real one: a cluster CA, a serving
//! certificate for 127.0.0.1 signed by it, and client certificates verified
//! against it (a certificate from another CA fails the TLS handshake).

use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use tokio_rustls::rustls;

use super::{handle, KubeFake, Shared};

/// The fake cluster's certificate authority.
pub struct ClusterCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl ClusterCa {
    /// A new CA (`CN=kubernetes`, like the Kubernetes CA Talos generates).
    pub fn new() -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "kubernetes");
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ca key");
        let cert = p.self_signed(&key).expect("ca cert");
        Self { cert, key }
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A client certificate (`CN=<user>`, `O=system:masters`) valid between the dates.
    pub fn client_cert(
        &self,
        user: &str,
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> (String, String) {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("client params");
        p.distinguished_name.push(DnType::CommonName, user);
        p.distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        p.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("client key");
        let cert = p
            .signed_by(&key, &self.cert, &self.key)
            .expect("client cert");
        (cert.pem(), key.serialize_pem())
    }

    /// A serving certificate for 127.0.0.1 signed by this CA.
    pub fn serving(&self) -> ServingTls {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        p.distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = p
            .signed_by(&key, &self.cert, &self.key)
            .expect("server cert");
        ServingTls {
            ca_cert_pem: self.cert.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }
}

/// What the fake serves HTTPS with: its certificate and key, and the CA that
/// issued it, which is also the CA client certificates must come from (as
/// on a real API server, whose serving and client CAs are the cluster's
/// Kubernetes CA).
#[derive(Clone)]
pub struct ServingTls {
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl ServingTls {
    /// A serving certificate for 127.0.0.1 issued by the Kubernetes CA of a
    /// Talos secrets bundle, as the cluster's kube-apiserver would have: an
    /// admin kubeconfig issued from the same bundle verifies it and is
    /// accepted.
    pub fn from_talos_bundle(secrets: &talos::SecretsBundle) -> Self {
        use talos::pki::{issue_leaf, CaKind, KeyAlg, LeafSpec, PrivKey};
        let leaf = issue_leaf(
            CaKind::Kubernetes,
            &secrets.k8s_ca,
            &LeafSpec {
                common_name: "kube-apiserver".into(),
                organizations: vec![],
                sans: vec!["127.0.0.1".into(), "localhost".into()],
                server_auth: true,
                client_auth: false,
                alg: KeyAlg::EcdsaP256,
                validity: time::Duration::days(1),
            },
            &mut rand::rngs::OsRng,
            time::OffsetDateTime::now_utc(),
        )
        .expect("apiserver certificate");
        let key = PrivKey::from_pem(&leaf.key)
            .expect("key")
            .to_pkcs8_pem()
            .expect("pkcs8");
        Self {
            ca_cert_pem: secrets.k8s_ca.crt.clone(),
            server_cert_pem: leaf.crt,
            server_key_pem: key.to_string(),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut self.ca_cert_pem.as_bytes()) {
            roots.add(c.expect("ca pem")).expect("ca root");
        }
        let certs: Vec<_> = rustls_pemfile::certs(&mut self.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("server certificate pem");
        let key = rustls_pemfile::private_key(&mut self.server_key_pem.as_bytes())
            .expect("server key pem")
            .expect("a server key");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .expect("client verifier");
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server config");
        Arc::new(cfg)
    }
}

impl Default for ClusterCa {
    fn default() -> Self {
        Self::new()
    }
}

impl KubeFake {
    /// Start serving HTTPS on 127.0.0.1 with certificates from `ca`.
    /// Requests need the bearer token or a client certificate from `ca`.
    pub async fn start_tls(ca: &ClusterCa) -> Self {
        Self::start_tls_with(&ca.serving()).await
    }

    /// Start serving HTTPS on 127.0.0.1 with `tls`. Requests need the bearer
    /// token or a client certificate from `tls.ca_cert_pem`.
    pub async fn start_tls_with(tls: &ServingTls) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Mutex::new(Shared {
            token: "fake-admin-token".into(),
            tls: true,
            ..Default::default()
        }));
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
        let s2 = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s3 = s2.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A handshake failure (unknown client CA, expired
                    // certificate) ends the connection, as on a real server.
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let client_cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .is_some_and(|c| !c.is_empty());
                    let svc =
                        hyper::service::service_fn(move |req| handle(s3.clone(), req, client_cert));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        let fake = Self {
            addr,
            shared,
            task,
            scheme: "https",
        };
        fake.seed_system_namespaces();
        fake
    }

    /// A kubeconfig trusting `ca` and authenticating with a client certificate.
    pub fn kubeconfig_tls(&self, ca: &ClusterCa, cert_pem: &str, key_pem: &str) -> String {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: admin\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            self.url(),
            b(&ca.cert_pem()),
            b(cert_pem),
            b(key_pem)
        )
    }
}
