//! A hand-written tonic client for the Talos `machine.MachineService` over
//! mutual TLS (client certificate from the Talos API CA).

use super::proto::{self, paths};
use crate::clientcfg::TalosClientCreds;
use crate::error::{Result, TalosError};
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Installs ring as rustls's process-wide provider (no-op if one is set).
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Formats an error with its whole source chain.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// A connected Talos API client.
#[derive(Debug, Clone)]
pub struct TalosClient {
    grpc: tonic::client::Grpc<Channel>,
    endpoint: String,
}

impl TalosClient {
    /// Connects to `addr` (port 50000 on a node), verifying the node's
    /// certificate against the Talos API CA and presenting `creds`.
    pub async fn connect(
        addr: SocketAddr,
        creds: &TalosClientCreds,
        connect_timeout: Duration,
        rpc_timeout: Duration,
    ) -> Result<Self> {
        ensure_crypto_provider();
        let endpoint = addr.to_string();
        let api = |detail: String| TalosError::Api {
            endpoint: endpoint.clone(),
            detail,
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&creds.ca_pem))
            .identity(Identity::from_pem(
                &creds.cert_pem,
                creds.key_pem.as_bytes(),
            ))
            .domain_name(addr.ip().to_string());
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| api(error_chain(&e)))?
            .tls_config(tls)
            .map_err(|e| api(format!("TLS setup: {}", error_chain(&e))))?
            .connect_timeout(connect_timeout)
            .timeout(rpc_timeout)
            .connect()
            .await
            .map_err(|e| api(format!("cannot connect: {}", error_chain(&e))))?;
        Ok(TalosClient {
            grpc: tonic::client::Grpc::new(channel),
            endpoint,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn unary<Req, Resp>(
        &mut self,
        path: &'static str,
        req: Req,
    ) -> std::result::Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc.ready().await.map_err(|e| {
            tonic::Status::unavailable(format!("channel not ready: {}", error_chain(&e)))
        })?;
        let codec = tonic::codec::ProstCodec::<Req, Resp>::default();
        let path = http::uri::PathAndQuery::from_static(path);
        self.grpc
            .unary(tonic::Request::new(req), path, codec)
            .await
            .map(|r| r.into_inner())
    }

    /// `MachineService.Version`.
    pub async fn version(&mut self) -> std::result::Result<proto::VersionResponse, tonic::Status> {
        self.unary(paths::VERSION, proto::Empty {}).await
    }

    /// `MachineService.Bootstrap` (no etcd recovery).
    pub async fn bootstrap(
        &mut self,
    ) -> std::result::Result<proto::BootstrapResponse, tonic::Status> {
        self.unary(
            paths::BOOTSTRAP,
            proto::BootstrapRequest {
                recover_etcd: false,
                recover_skip_hash_check: false,
            },
        )
        .await
    }

    /// `MachineService.EtcdMemberList`.
    pub async fn etcd_member_list(
        &mut self,
    ) -> std::result::Result<proto::EtcdMemberListResponse, tonic::Status> {
        self.unary(
            paths::ETCD_MEMBER_LIST,
            proto::EtcdMemberListRequest { query_local: false },
        )
        .await
    }

    /// `MachineService.ServiceList`.
    pub async fn service_list(
        &mut self,
    ) -> std::result::Result<proto::ServiceListResponse, tonic::Status> {
        self.unary(paths::SERVICE_LIST, proto::Empty {}).await
    }
}
