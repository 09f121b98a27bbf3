//! The service's tiered cache over TLS: a throwaway `redis-server` that speaks TLS only
//! (`--tls-port P --port 0`), its certificate signed by a CA made here and handed to the
//! service through `REDIS_CA_CERT`. Never the shared Redis.

mod support;

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use support::{TestApp, header};
use towerkit_test_support::servers::{Redis, RedisTls};

#[tokio::test]
async fn the_tiered_cache_shares_entries_over_rediss_with_a_private_ca() {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "service test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let redis = Redis::start_tls(
        &RedisTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: ca.pem(),
        },
        &[],
    )
    .expect("redis-server starts with TLS");
    let ca_file = std::env::temp_dir().join(format!(
        "towerkit-service-redis-ca-{}-{}.pem",
        std::process::id(),
        redis.port()
    ));
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let one = TestApp::start_with(|c| {
        c.redis_url = Some(redis.url());
        c.redis_ca_cert = Some(ca_file.clone());
        c.redis_prefix = Some(support::unique("tls"));
    })
    .await;
    let two = one.second_instance().await;
    let first = one.get("/api/products/3").await;
    assert!(
        header(&first, "cache-status").contains("miss"),
        "{}",
        header(&first, "cache-status")
    );
    // Another instance (its own memory tier, empty) is answered from Redis over TLS.
    let mut status = String::new();
    for _ in 0..50 {
        status = header(&two.get("/api/products/3").await, "cache-status");
        if status.contains("hit") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_file(&ca_file);
    assert!(status.contains("hit"), "{status}");
}
