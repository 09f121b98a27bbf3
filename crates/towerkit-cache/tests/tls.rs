//! Redis over TLS against throwaway `redis-server --tls-port P --port 0` processes (plain TCP
//! refused), their certificates made here with rcgen: one CA signs the server's certificate
//! (for `localhost` and `127.0.0.1`); a second CA signs nothing the servers present. Never
//! the shared Redis.

#![cfg(feature = "redis-tls")]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use towerkit_cache::{CacheLayer, MemoryStore, RedisStore, TieredStore};
use towerkit_test_support::Logs;
use towerkit_test_support::servers::{Redis, RedisCluster, RedisTls};

use common::{Origin, cached, eventually, get_req, send};

/// The ACL user's password: it must never be printed.
const PASSWORD: &str = "s3cr3t-Pa55word";

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Certificate, key and CA for servers on `localhost` / `127.0.0.1`, and the CA's PEM.
fn server_tls() -> (RedisTls, String) {
    let ca = ca("towerkit redis test CA");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let tls = RedisTls {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: ca.pem(),
    };
    (tls, ca.pem())
}

/// A TLS server (with extra arguments) and the PEM of the CA that signed its certificate.
fn tls_server(args: &[&str]) -> (Redis, String) {
    let (tls, ca_pem) = server_tls();
    let server = Redis::start_tls(&tls, args).expect("redis-server starts with TLS");
    (server, ca_pem)
}

/// A synchronous connection to a TLS server, outside the store, as the default user.
fn admin(url: &str, ca_pem: &str) -> redis::Connection {
    install_ring();
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca_pem.as_bytes().to_vec()),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let attempt = redis::Client::build_with_tls(url, certs.clone())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)));
        match attempt {
            Ok(conn) => return conn,
            Err(error) if std::time::Instant::now() > deadline => panic!("{error}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The provider the store would install, for the test's own client made before any store.
fn install_ring() {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn store(url: &str, ca_pem: &str) -> RedisStore {
    RedisStore::builder(url)
        .prefix("tls:")
        .timeout(Duration::from_millis(500))
        .tls_root_certificate(ca_pem.as_bytes())
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_store_stores_and_hits_over_tls_with_a_private_ca() {
    let (server, ca_pem) = tls_server(&[]);
    assert!(server.url().starts_with("rediss://"));
    let layer = CacheLayer::builder(store(&server.url(), &ca_pem).await)
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let origin = Origin::default();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    assert!(!send(&app, get_req("/a")).await.is_hit());
    let mut conn = admin(&server.url(), &ca_pem);
    assert!(
        eventually(|| redis::cmd("DBSIZE").query::<usize>(&mut conn).unwrap() > 0).await,
        "the entry reached Redis over TLS"
    );
    let second = send(&app, get_req("/a")).await;
    assert!(second.is_hit());
    assert_eq!(second.body, "call 1");
    assert_eq!(origin.calls(), 1);
    // Another instance (an empty store of its own) reads it from Redis.
    let other = cached(
        &CacheLayer::builder(store(&server.url(), &ca_pem).await)
            .store_timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
        &origin,
        &[("cache-control", "max-age=60")],
    );
    assert!(send(&other, get_req("/a")).await.is_hit());
}

#[tokio::test]
async fn an_acl_user_with_a_password_connects_over_tls_and_a_wrong_password_costs_misses() {
    let (server, ca_pem) = tls_server(&[]);
    let mut conn = admin(&server.url(), &ca_pem);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("cache")
        .arg("on")
        .arg(format!(">{PASSWORD}"))
        .arg("~tls:*")
        .arg("&*")
        .arg("+@all")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("off")
        .query(&mut conn)
        .unwrap();
    let port = server.port();

    let url = format!("rediss://cache:{PASSWORD}@127.0.0.1:{port}");
    let origin = Origin::default();
    let app = cached(
        &CacheLayer::builder(store(&url, &ca_pem).await)
            .store_timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
        &origin,
        &[("cache-control", "max-age=60")],
    );
    send(&app, get_req("/acl")).await;
    assert!(eventually(|| origin.calls() == 1).await);
    let mut hit = false;
    for _ in 0..50 {
        if send(&app, get_req("/acl")).await.is_hit() {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hit, "the ACL user stores and reads");

    let logs = Logs::capture();
    let wrong = format!("rediss://cache:wrong-{PASSWORD}@127.0.0.1:{port}");
    let wrong_origin = Origin::default();
    let wrong_app = cached(
        &CacheLayer::builder(store(&wrong, &ca_pem).await)
            .store_timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
        &wrong_origin,
        &[("cache-control", "max-age=60")],
    );
    for _ in 0..3 {
        let seen = send(&wrong_app, get_req("/acl")).await;
        assert_eq!(seen.status, StatusCode::OK);
        assert!(!seen.is_hit());
    }
    assert_eq!(wrong_origin.calls(), 3, "a refused login costs misses");
    let text = logs.text();
    assert!(text.contains("redis cache store unavailable"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn a_wrong_ca_costs_misses_never_an_error_and_the_log_has_no_password() {
    let (server, _) = tls_server(&[]);
    let other_ca = ca("another CA").pem();
    let logs = Logs::capture();
    let url = format!("rediss://cache:{PASSWORD}@127.0.0.1:{}", server.port());
    let store = store(&url, &other_ca).await;
    assert!(!format!("{store:?}").contains(PASSWORD));
    let layer = CacheLayer::builder(store)
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let origin = Origin::default();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    for _ in 0..3 {
        let seen = send(&app, get_req("/a")).await;
        assert_eq!(seen.status, StatusCode::OK);
        assert!(!seen.is_hit());
    }
    assert_eq!(origin.calls(), 3);
    let text = logs.text();
    assert!(text.contains("redis cache store unavailable"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn tiered_invalidation_reaches_another_instance_over_tls_pubsub() {
    let (server, ca_pem) = tls_server(&[]);
    let url = server.url();
    let a_store = TieredStore::new(MemoryStore::new(1 << 20), store(&url, &ca_pem).await);
    let b_store = TieredStore::new(MemoryStore::new(1 << 20), store(&url, &ca_pem).await);
    let mut conn = admin(&url, &ca_pem);
    // Both subscribers are connected (over TLS) before anything is published.
    assert!(
        eventually(|| {
            redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg("tls:invalidate")
                .query::<(String, usize)>(&mut conn)
                .is_ok_and(|(_, n)| n == 2)
        })
        .await,
        "both tiered stores subscribed over TLS"
    );
    let layer = |store: &TieredStore| {
        CacheLayer::builder(store.clone())
            .store_timeout(Duration::from_secs(1))
            .build()
            .unwrap()
    };
    let (a, b) = (layer(&a_store), layer(&b_store));
    let origin = Origin::default();
    let headers: &'static [(&'static str, &'static str)] =
        &[("cache-control", "max-age=60"), ("cache-tag", "products")];
    let a_app = cached(&a, &origin, headers);
    let b_app = cached(&b, &origin, headers);
    send(&a_app, get_req("/products")).await;
    let mut from_l2 = false;
    for _ in 0..50 {
        if send(&b_app, get_req("/products")).await.is_hit() {
            from_l2 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(from_l2, "B reads A's entry from Redis");
    assert_eq!(b_store.l1().len(), 1, "copied into B's memory");

    a.handle().invalidate_tag("products").await.unwrap();
    assert!(
        eventually(|| b_store.l1().is_empty()).await,
        "B's L1 was invalidated over TLS pub/sub"
    );
    let post = send(
        &a_app,
        Request::post("/products").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(post.status, StatusCode::OK);
}

/// A one-node Redis Cluster over TLS (`tls-cluster yes`) holding every slot, and its CA.
#[cfg(feature = "redis-cluster")]
async fn tls_cluster() -> (Redis, String) {
    let (server, ca_pem) = tls_server(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--tls-cluster",
        "yes",
        "--tls-replication",
        "yes",
    ]);
    let mut conn = admin(&server.url(), &ca_pem);
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query(&mut conn)
        .unwrap();
    let ready = eventually(|| {
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query::<String>(&mut conn)
            .is_ok_and(|info| info.contains("cluster_state:ok"))
    })
    .await;
    assert!(ready, "single-node TLS cluster did not become ready");
    (server, ca_pem)
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn a_tls_cluster_stores_and_hits_through_the_store() {
    let (server, ca_pem) = tls_cluster().await;
    let store = RedisStore::cluster([server.url()])
        .prefix("tls:")
        .timeout(Duration::from_millis(500))
        .tls_root_certificate(ca_pem.as_bytes())
        .connect()
        .await
        .unwrap();
    let layer = CacheLayer::builder(store)
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let origin = Origin::default();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    send(&app, get_req("/a")).await;
    let mut hit = false;
    for _ in 0..50 {
        if send(&app, get_req("/a")).await.is_hit() {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hit, "the cluster stores and reads over TLS");
    assert_eq!(origin.calls(), 1);
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn a_tls_cluster_behind_a_wrong_ca_costs_misses_like_a_single_server() {
    let (server, _) = tls_cluster().await;
    let other_ca = ca("another CA").pem();
    let logs = Logs::capture();
    let url = format!("rediss://default:{PASSWORD}@127.0.0.1:{}", server.port());
    let store = RedisStore::cluster([url])
        .prefix("tls:")
        .timeout(Duration::from_millis(500))
        .tls_root_certificate(other_ca.as_bytes())
        .connect()
        .await
        .expect("a cluster that fails TLS still builds a store, as a single server does");
    let layer = CacheLayer::builder(store)
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let origin = Origin::default();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    for _ in 0..3 {
        let seen = send(&app, get_req("/a")).await;
        assert_eq!(seen.status, StatusCode::OK);
        assert!(!seen.is_hit());
    }
    assert_eq!(origin.calls(), 3);
    let text = logs.text();
    assert!(
        text.contains("unavailable") || text.contains("unreachable"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn a_six_node_tls_cluster_stores_and_hits_for_keys_on_every_primary() {
    let (tls, ca_pem) = server_tls();
    let cluster = RedisCluster::start_tls(&tls).expect("a six-node TLS cluster starts");
    let connect = || {
        RedisStore::cluster(cluster.urls())
            .prefix("tls6:")
            .timeout(Duration::from_millis(500))
            .tls_root_certificate(ca_pem.as_bytes())
            .connect()
    };
    let layer = |store: RedisStore| {
        CacheLayer::builder(store)
            .store_timeout(Duration::from_secs(1))
            .build()
            .unwrap()
    };
    let origin = Origin::default();
    let headers: &'static [(&'static str, &'static str)] = &[("cache-control", "max-age=60")];
    let writer = layer(connect().await.unwrap());
    let writer_app = cached(&writer, &origin, headers);
    const KEYS: usize = 60;
    for i in 0..KEYS {
        assert!(!send(&writer_app, get_req(&format!("/k{i}"))).await.is_hit());
    }
    assert_eq!(origin.calls(), KEYS);

    // A second instance, with connections of its own, hits for every key.
    let reader = layer(connect().await.unwrap());
    let reader_app = cached(&reader, &origin, headers);
    for i in 0..KEYS {
        let mut hit = false;
        for _ in 0..100 {
            if send(&reader_app, get_req(&format!("/k{i}"))).await.is_hit() {
                hit = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(hit, "/k{i} is read from the cluster by the second store");
    }
    // Misses while an entry was still on its way may have called the origin again; an
    // entry read back is never re-fetched.
    let calls = origin.calls();
    for i in 0..KEYS {
        assert!(send(&reader_app, get_req(&format!("/k{i}"))).await.is_hit());
    }
    assert_eq!(origin.calls(), calls);

    // The keys are spread over all three primaries.
    let mut primaries_with_keys = 0;
    for url in cluster.urls() {
        let mut conn = admin(&url, &ca_pem);
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut conn)
            .unwrap();
        if info.contains("role:master") {
            let keys: usize = redis::cmd("DBSIZE").query(&mut conn).unwrap();
            assert!(keys > 0, "the primary at {url} holds none of the keys");
            primaries_with_keys += 1;
        }
    }
    assert_eq!(primaries_with_keys, 3);
}
