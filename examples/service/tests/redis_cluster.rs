//! The service's tiered cache on a Redis Cluster given by `REDIS_CLUSTER_NODES`: throwaway
//! six-node clusters (three primaries, three replicas) of towerkit-test-support, plain and
//! TLS. Never the shared Redis.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use example_service::Config;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;
use support::{TestApp, header};
use towerkit_test_support::servers::{RedisCluster, RedisTls};

/// How many products are read: enough for their keys to land on all three primaries.
const PRODUCTS: usize = 24;

/// `REDIS_CLUSTER_NODES` (and `REDIS_CA_CERT`) read the way the service reads its
/// environment.
fn from_env(pairs: &[(&str, String)]) -> Config {
    Config::from_lookup(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("the configuration is valid")
}

/// Waits until `app` answers `path` from the cache; the `Cache-Status` last seen.
async fn wait_for_hit(app: &TestApp, path: &str) -> String {
    let mut status = String::new();
    for _ in 0..100 {
        status = header(&app.get(path).await, "cache-status");
        if status.contains("hit") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    status
}

#[tokio::test]
async fn instances_share_entries_and_invalidations_through_a_cluster_of_host_ports() {
    let cluster = RedisCluster::start().expect("a six-node cluster starts");
    let nodes: Vec<String> = cluster
        .ports()
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    let parsed = from_env(&[("REDIS_CLUSTER_NODES", nodes.join(","))]);
    assert_eq!(parsed.redis_cluster_nodes.len(), 6);
    let one = TestApp::start_with(|c| {
        c.redis_cluster_nodes = parsed.redis_cluster_nodes.clone();
        c.redis_prefix = Some(support::unique("cluster"));
    })
    .await;
    let two = one.second_instance().await;
    for id in 1..=PRODUCTS {
        let first = one.get(&format!("/api/products/{id}")).await;
        assert_eq!(first.status, StatusCode::OK);
    }
    // The other instance (its own memory tier, empty) is answered from the cluster, for
    // keys on every primary.
    for id in 1..=PRODUCTS {
        let status = wait_for_hit(&two, &format!("/api/products/{id}")).await;
        assert!(status.contains("hit"), "/api/products/{id}: {status}");
    }

    // A write on one instance evicts the other's memory tier through the cluster's pub/sub.
    let update = json!({"name": "Renamed on one", "category_id": 1, "price_cents": 1});
    let written = one.send_json(Method::PUT, "/api/products/3", &update).await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.text());
    let mut seen = String::new();
    for _ in 0..100 {
        seen = two.get("/api/products/3").await.json()["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if seen == "Renamed on one" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, "Renamed on one");
}

#[tokio::test]
async fn the_ca_certificate_applies_to_every_tls_cluster_node() {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "service cluster test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let cluster = RedisCluster::start_tls(&RedisTls {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: ca.pem(),
    })
    .expect("a six-node TLS cluster starts");
    let ca_file = std::env::temp_dir().join(format!(
        "towerkit-service-cluster-ca-{}-{}.pem",
        std::process::id(),
        cluster.ports()[0]
    ));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let urls = cluster.urls();
    assert!(
        urls.iter().all(|url| url.starts_with("rediss://")),
        "{urls:?}"
    );
    let parsed = from_env(&[
        ("REDIS_CLUSTER_NODES", urls.join(",")),
        ("REDIS_CA_CERT", ca_file.display().to_string()),
    ]);

    let one = TestApp::start_with(|c| {
        c.redis_cluster_nodes = parsed.redis_cluster_nodes.clone();
        c.redis_ca_cert = parsed.redis_ca_cert.clone();
        c.redis_prefix = Some(support::unique("cluster_tls"));
    })
    .await;
    let two = one.second_instance().await;
    for id in 1..=PRODUCTS {
        assert_eq!(
            one.get(&format!("/api/products/{id}")).await.status,
            StatusCode::OK
        );
    }
    let mut statuses = Vec::new();
    for id in 1..=PRODUCTS {
        statuses.push(wait_for_hit(&two, &format!("/api/products/{id}")).await);
    }
    let _ = std::fs::remove_file(&ca_file);
    assert!(
        statuses.iter().all(|status| status.contains("hit")),
        "{statuses:?}"
    );
}
