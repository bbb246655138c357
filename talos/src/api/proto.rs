//! The few Talos API messages the provisioner uses, written from the Talos gRPC
//! API reference (packages `common` and `machine`), field numbers as published.
//!
//! Names, field numbers and method paths were checked against the upstream
//! `api/machine/machine.proto` and `api/common/common.proto` at tags v1.13.9
//! and v1.14.0-rc.1 (identical for these messages); see the talos crate's
//! README. The tests below pin the wire tags, so changing a number fails them.

/// `google.protobuf.Empty`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// `google.rpc.Status` (details omitted).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `common.Metadata`: which node answered, and its per-node error if any.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(string, tag = "1")]
    pub hostname: String,
    #[prost(string, tag = "2")]
    pub error: String,
    #[prost(message, optional, tag = "3")]
    pub status: Option<RpcStatus>,
}

/// `machine.VersionInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionInfo {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(string, tag = "2")]
    pub sha: String,
    #[prost(string, tag = "3")]
    pub built: String,
    #[prost(string, tag = "4")]
    pub go_version: String,
    #[prost(string, tag = "5")]
    pub os: String,
    #[prost(string, tag = "6")]
    pub arch: String,
}

/// `machine.PlatformInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PlatformInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub mode: String,
}

/// `machine.Version`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Version {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    #[prost(message, optional, tag = "2")]
    pub version: Option<VersionInfo>,
    #[prost(message, optional, tag = "3")]
    pub platform: Option<PlatformInfo>,
}

/// `machine.VersionResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionResponse {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<Version>,
}

/// `machine.BootstrapRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BootstrapRequest {
    #[prost(bool, tag = "1")]
    pub recover_etcd: bool,
    #[prost(bool, tag = "2")]
    pub recover_skip_hash_check: bool,
}

/// `machine.Bootstrap`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Bootstrap {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
}

/// `machine.BootstrapResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BootstrapResponse {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<Bootstrap>,
}

/// `machine.EtcdMemberListRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EtcdMemberListRequest {
    #[prost(bool, tag = "1")]
    pub query_local: bool,
}

/// `machine.EtcdMember`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EtcdMember {
    #[prost(uint64, tag = "2")]
    pub id: u64,
    #[prost(string, tag = "3")]
    pub hostname: String,
    #[prost(string, repeated, tag = "4")]
    pub peer_urls: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    pub client_urls: Vec<String>,
    #[prost(bool, tag = "6")]
    pub is_learner: bool,
}

/// `machine.EtcdMembers`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EtcdMembers {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    #[prost(string, repeated, tag = "2")]
    pub legacy_members: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub members: Vec<EtcdMember>,
}

/// `machine.EtcdMemberListResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EtcdMemberListResponse {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<EtcdMembers>,
}

/// `machine.ServiceHealth` (last_change omitted).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceHealth {
    #[prost(bool, tag = "1")]
    pub unknown: bool,
    #[prost(bool, tag = "2")]
    pub healthy: bool,
    #[prost(string, tag = "3")]
    pub last_message: String,
}

/// `machine.ServiceInfo` (events omitted).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceInfo {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub state: String,
    #[prost(message, optional, tag = "4")]
    pub health: Option<ServiceHealth>,
}

/// `machine.ServiceList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceList {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    #[prost(message, repeated, tag = "2")]
    pub services: Vec<ServiceInfo>,
}

/// `machine.ServiceListResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceListResponse {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<ServiceList>,
}

/// gRPC method paths of `machine.MachineService`.
pub mod paths {
    pub const VERSION: &str = "/machine.MachineService/Version";
    pub const BOOTSTRAP: &str = "/machine.MachineService/Bootstrap";
    pub const ETCD_MEMBER_LIST: &str = "/machine.MachineService/EtcdMemberList";
    pub const SERVICE_LIST: &str = "/machine.MachineService/ServiceList";
}

#[cfg(test)]
mod tests {
    //! Wire-format checks: every field is encoded with the tag confirmed
    //! against upstream (`(field_number << 3) | wire_type`), written out here
    //! independently of the prost attributes above.
    use super::*;
    use prost::Message as _;

    /// Wire types.
    const VARINT: u8 = 0;
    const LEN: u8 = 2;

    fn key(field: u8, wire: u8) -> u8 {
        // All confirmed field numbers are < 16, so the key is one byte.
        assert!(field < 16);
        (field << 3) | wire
    }

    fn string(field: u8, v: &str) -> Vec<u8> {
        let mut out = vec![key(field, LEN), v.len() as u8];
        out.extend_from_slice(v.as_bytes());
        out
    }

    fn bool_true(field: u8) -> Vec<u8> {
        vec![key(field, VARINT), 1]
    }

    fn nested(field: u8, inner: Vec<u8>) -> Vec<u8> {
        let mut out = vec![key(field, LEN), inner.len() as u8];
        out.extend(inner);
        out
    }

    fn cat(parts: Vec<Vec<u8>>) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn method_paths_match_the_machine_service() {
        assert_eq!(paths::VERSION, "/machine.MachineService/Version");
        assert_eq!(paths::BOOTSTRAP, "/machine.MachineService/Bootstrap");
        assert_eq!(
            paths::ETCD_MEMBER_LIST,
            "/machine.MachineService/EtcdMemberList"
        );
        assert_eq!(paths::SERVICE_LIST, "/machine.MachineService/ServiceList");
    }

    #[test]
    fn empty_encodes_to_nothing() {
        assert!(Empty {}.encode_to_vec().is_empty());
    }

    #[test]
    fn common_metadata_and_rpc_status_tags() {
        let m = Metadata {
            hostname: "h".into(),
            error: "e".into(),
            status: Some(RpcStatus {
                code: 5,
                message: "m".into(),
            }),
        };
        let status = cat(vec![vec![key(1, VARINT), 5], string(2, "m")]);
        let want = cat(vec![string(1, "h"), string(2, "e"), nested(3, status)]);
        assert_eq!(m.encode_to_vec(), want);
    }

    fn meta() -> (Option<Metadata>, Vec<u8>) {
        (
            Some(Metadata {
                hostname: "n".into(),
                ..Default::default()
            }),
            nested(1, string(1, "n")),
        )
    }

    #[test]
    fn version_messages_tags() {
        let info = VersionInfo {
            tag: "t".into(),
            sha: "s".into(),
            built: "b".into(),
            go_version: "g".into(),
            os: "o".into(),
            arch: "a".into(),
        };
        let info_bytes = cat(vec![
            string(1, "t"),
            string(2, "s"),
            string(3, "b"),
            string(4, "g"),
            string(5, "o"),
            string(6, "a"),
        ]);
        assert_eq!(info.encode_to_vec(), info_bytes);
        let platform = PlatformInfo {
            name: "p".into(),
            mode: "m".into(),
        };
        let platform_bytes = cat(vec![string(1, "p"), string(2, "m")]);
        assert_eq!(platform.encode_to_vec(), platform_bytes);
        let (metadata, meta_bytes) = meta();
        let v = Version {
            metadata,
            version: Some(info),
            platform: Some(platform),
        };
        let v_bytes = cat(vec![
            meta_bytes,
            nested(2, info_bytes),
            nested(3, platform_bytes),
        ]);
        assert_eq!(v.encode_to_vec(), v_bytes);
        let resp = VersionResponse { messages: vec![v] };
        assert_eq!(resp.encode_to_vec(), nested(1, v_bytes.clone()));
        // And upstream bytes decode into our types (unknown field 4, `features`, skipped).
        let mut with_features = v_bytes;
        with_features.extend(nested(4, vec![key(1, VARINT), 1]));
        let back = Version::decode(with_features.as_slice()).unwrap();
        assert_eq!(back.version.unwrap().tag, "t");
    }

    #[test]
    fn bootstrap_messages_tags() {
        let req = BootstrapRequest {
            recover_etcd: true,
            recover_skip_hash_check: true,
        };
        assert_eq!(req.encode_to_vec(), cat(vec![bool_true(1), bool_true(2)]));
        let (metadata, meta_bytes) = meta();
        let resp = BootstrapResponse {
            messages: vec![Bootstrap { metadata }],
        };
        assert_eq!(resp.encode_to_vec(), nested(1, meta_bytes));
    }

    #[test]
    fn etcd_member_list_messages_tags() {
        let req = EtcdMemberListRequest { query_local: true };
        assert_eq!(req.encode_to_vec(), bool_true(1));
        let member = EtcdMember {
            id: 7,
            hostname: "h".into(),
            peer_urls: vec!["p".into()],
            client_urls: vec!["c".into()],
            is_learner: true,
        };
        let member_bytes = cat(vec![
            vec![key(2, VARINT), 7],
            string(3, "h"),
            string(4, "p"),
            string(5, "c"),
            bool_true(6),
        ]);
        assert_eq!(member.encode_to_vec(), member_bytes);
        let (metadata, meta_bytes) = meta();
        let members = EtcdMembers {
            metadata,
            legacy_members: vec!["l".into()],
            members: vec![member],
        };
        let members_bytes = cat(vec![meta_bytes, string(2, "l"), nested(3, member_bytes)]);
        assert_eq!(members.encode_to_vec(), members_bytes);
        let resp = EtcdMemberListResponse {
            messages: vec![members],
        };
        assert_eq!(resp.encode_to_vec(), nested(1, members_bytes));
    }

    #[test]
    fn service_list_messages_tags() {
        let health = ServiceHealth {
            unknown: true,
            healthy: true,
            last_message: "m".into(),
        };
        let health_bytes = cat(vec![bool_true(1), bool_true(2), string(3, "m")]);
        assert_eq!(health.encode_to_vec(), health_bytes);
        let info = ServiceInfo {
            id: "etcd".into(),
            state: "Running".into(),
            health: Some(health),
        };
        let info_bytes = cat(vec![
            string(1, "etcd"),
            string(2, "Running"),
            nested(4, health_bytes),
        ]);
        assert_eq!(info.encode_to_vec(), info_bytes);
        let (metadata, meta_bytes) = meta();
        let list = ServiceList {
            metadata,
            services: vec![info],
        };
        let list_bytes = cat(vec![meta_bytes, nested(2, info_bytes)]);
        assert_eq!(list.encode_to_vec(), list_bytes);
        let resp = ServiceListResponse {
            messages: vec![list],
        };
        assert_eq!(resp.encode_to_vec(), nested(1, list_bytes.clone()));
        // ServiceInfo.events (3) and ServiceHealth.last_change (4) from upstream
        // are skipped, not misread.
        let mut upstream = string(1, "etcd");
        upstream.extend(nested(3, nested(1, string(1, "started"))));
        upstream.extend(nested(4, nested(4, vec![key(1, VARINT), 9])));
        let back = ServiceInfo::decode(upstream.as_slice()).unwrap();
        assert_eq!(back.id, "etcd");
        assert!(back.health.is_some());
    }
}
