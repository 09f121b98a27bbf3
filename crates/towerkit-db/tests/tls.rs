//! PostgreSQL over TLS against a throwaway server with `ssl = on` and `hostssl`-only
//! authentication (plain TCP is refused), its certificates made here with rcgen: one CA
//! signs the server's certificate (for `localhost` only) and a client certificate; a second
//! CA signs nothing the server presents.
//!
//! The tests of this file share one server while they run (a cluster costs an `initdb`, about
//! a second); it is stopped and removed when the last of them ends.

#![cfg(feature = "tls")]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tower::ServiceExt;
use towerkit_db::{Db, DbConfig, DbConfigBuilder, DbError, HealthStatus, SslMode, TlsFailure};
use towerkit_test_support::Logs;
use towerkit_test_support::servers::{Postgres, PostgresTls};

/// The password every URL here carries: the server trusts, so it is never needed, and it
/// must never be printed.
const PASSWORD: &str = "s3cr3t-Pa55word";

/// The shared server and the files a client needs.
struct Fixture {
    server: Postgres,
    dir: PathBuf,
}

impl Fixture {
    /// The shared fixture, started by the first test that needs it.
    fn get() -> Arc<Fixture> {
        static SHARED: Mutex<Weak<Fixture>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fixture) = shared.upgrade() {
            return fixture;
        }
        let fixture = Arc::new(Fixture::start());
        *shared = Arc::downgrade(&fixture);
        fixture
    }

    fn start() -> Fixture {
        let ca = ca("towerkit test CA");
        let other_ca = ca_cert_pem("another CA");
        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "tls_cert_user");
        let client_cert = client_params.signed_by(&client_key, &ca).unwrap();

        let mut tls = PostgresTls::new(server_cert.pem(), server_key.serialize_pem());
        tls.client_ca_pem = Some(ca.pem());
        tls.hba = vec![
            // The certificate's CN must name the user.
            "hostssl all tls_cert_user 127.0.0.1/32 cert".to_owned(),
            "hostssl all all 127.0.0.1/32 trust".to_owned(),
        ];
        let server = Postgres::start_tls(&tls).unwrap();

        let dir = std::env::temp_dir().join(common::unique("towerkit_db_tls"));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("other-ca.pem", other_ca),
            ("client.crt", client_cert.pem()),
            ("client.key", client_key.serialize_pem()),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Fixture { server, dir }
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A URL to the server by `host`, with the password and `query` parameters.
    fn url(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@{host}:{}/postgres?{query}",
            self.server.port()
        )
    }

    fn builder(&self, host: &str, query: &str) -> DbConfigBuilder {
        DbConfig::builder()
            .url(self.url(host, query))
            .connect_timeout(Duration::from_secs(5))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn ca_cert_pem(name: &str) -> String {
    ca(name).pem()
}

/// Connects with `config` and runs `SELECT ssl FROM pg_stat_ssl` for this connection.
async fn encrypted(config: DbConfig) -> Result<bool, DbError> {
    let db = Db::connect(config).await?;
    let row = db
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn require_connects_encrypted_without_checking_the_certificate() {
    let fixture = Fixture::get();
    // By IP address, with no CA: `require` checks neither chain nor name.
    let config = fixture
        .builder("127.0.0.1", "sslmode=require")
        .build()
        .unwrap();
    assert_eq!(config.get_ssl_mode(), SslMode::Require);
    assert!(encrypted(config).await.unwrap());
}

#[tokio::test]
async fn prefer_uses_tls_when_the_server_offers_it() {
    let fixture = Fixture::get();
    let config = fixture.builder("127.0.0.1", "").build().unwrap();
    assert_eq!(config.get_ssl_mode(), SslMode::Prefer);
    assert!(encrypted(config).await.unwrap());
}

#[tokio::test]
async fn verify_full_connects_with_the_right_ca_and_host() {
    let fixture = Fixture::get();
    let query = format!("sslmode=verify-full&sslrootcert={}", fixture.file("ca.pem"));
    let config = fixture.builder("localhost", &query).build().unwrap();
    assert_eq!(config.get_ssl_mode(), SslMode::VerifyFull);
    assert!(encrypted(config).await.unwrap());

    // The same from the builder, over the URL's `require`.
    let config = fixture
        .builder("localhost", "sslmode=require")
        .ssl_mode(SslMode::VerifyFull)
        .ssl_root_cert(fixture.file("ca.pem"))
        .build()
        .unwrap();
    assert!(encrypted(config).await.unwrap());
}

#[tokio::test]
async fn verify_full_fails_with_the_wrong_ca() {
    let fixture = Fixture::get();
    let query = format!(
        "sslmode=verify-full&sslrootcert={}",
        fixture.file("other-ca.pem")
    );
    let config = fixture.builder("localhost", &query).build().unwrap();
    match encrypted(config).await {
        Err(error @ DbError::Tls { failure, .. }) => {
            assert_eq!(failure, TlsFailure::UnknownIssuer, "{error}");
            assert!(
                error.to_string().contains("not signed by a trusted CA"),
                "{error}"
            );
            assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        other => panic!("expected an unknown issuer, got {other:?}"),
    }
}

#[tokio::test]
async fn verify_full_fails_for_a_host_name_the_certificate_does_not_name() {
    let fixture = Fixture::get();
    // The certificate names `localhost` only; 127.0.0.1 is the same server.
    let query = format!("sslmode=verify-full&sslrootcert={}", fixture.file("ca.pem"));
    let config = fixture.builder("127.0.0.1", &query).build().unwrap();
    match encrypted(config).await {
        Err(error @ DbError::Tls { failure, .. }) => {
            assert_eq!(failure, TlsFailure::WrongHostName, "{error}");
            assert!(
                error.to_string().contains("not valid for the host name"),
                "{error}"
            );
        }
        other => panic!("expected a host name mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn verify_ca_checks_the_chain_but_not_the_host_name() {
    let fixture = Fixture::get();
    let query = format!("sslmode=verify-ca&sslrootcert={}", fixture.file("ca.pem"));
    let config = fixture.builder("127.0.0.1", &query).build().unwrap();
    assert!(encrypted(config).await.unwrap());

    let query = format!(
        "sslmode=verify-ca&sslrootcert={}",
        fixture.file("other-ca.pem")
    );
    let config = fixture.builder("127.0.0.1", &query).build().unwrap();
    let error = encrypted(config).await.unwrap_err();
    assert!(
        matches!(
            error,
            DbError::Tls {
                failure: TlsFailure::UnknownIssuer,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn require_with_a_root_certificate_checks_the_chain_as_libpq_does() {
    let fixture = Fixture::get();
    let config = fixture
        .builder("127.0.0.1", "sslmode=require")
        .ssl_root_cert(fixture.file("other-ca.pem"))
        .build()
        .unwrap();
    let error = encrypted(config).await.unwrap_err();
    assert!(
        matches!(
            error,
            DbError::Tls {
                failure: TlsFailure::UnknownIssuer,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn verify_full_against_a_server_without_tls_fails_instead_of_going_plain() {
    let fixture = Fixture::get();
    // A second cluster, plain only (`ssl = off`).
    let plain = Postgres::start().unwrap();
    let url = format!(
        "postgres://postgres:{PASSWORD}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        plain.port(),
        fixture.file("ca.pem")
    );
    let config = DbConfig::from_url(&url).unwrap();
    match encrypted(config).await {
        Err(error @ DbError::Tls { failure, .. }) => {
            assert_eq!(failure, TlsFailure::NotOffered, "{error}");
            assert!(error.to_string().contains("does not accept TLS"), "{error}");
        }
        other => panic!("expected a refusal to go plain, got {other:?}"),
    }
}

#[tokio::test]
async fn disable_against_a_server_that_demands_tls_fails_clearly() {
    let fixture = Fixture::get();
    let config = fixture
        .builder("127.0.0.1", "sslmode=disable")
        .build()
        .unwrap();
    match encrypted(config).await {
        Err(error @ DbError::Connect(_)) => {
            let message = error.to_string();
            assert!(message.contains("pg_hba.conf"), "{message}");
            assert!(message.contains("no encryption"), "{message}");
        }
        other => panic!("expected a refused plain connection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_certificate_authenticates_where_the_server_asks_for_one() {
    let fixture = Fixture::get();
    let admin = Db::connect(
        fixture
            .builder("localhost", "sslmode=require")
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    admin
        .execute(
            "DO $$ BEGIN CREATE ROLE tls_cert_user LOGIN; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            &[],
        )
        .await
        .unwrap();
    let url = |query: &str| {
        format!(
            "postgres://tls_cert_user@localhost:{}/postgres?{query}",
            fixture.server.port()
        )
    };

    let without = DbConfig::builder()
        .url(url("sslmode=require"))
        .build()
        .unwrap();
    let error = encrypted(without).await.unwrap_err();
    assert!(
        matches!(error, DbError::Connect(_) | DbError::Tls { .. }),
        "{error:?}"
    );

    let query = format!(
        "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        fixture.file("ca.pem"),
        fixture.file("client.crt"),
        fixture.file("client.key")
    );
    let with = DbConfig::builder().url(url(&query)).build().unwrap();
    assert!(encrypted(with).await.unwrap());
}

#[tokio::test]
async fn health_checks_and_the_statement_timeout_work_over_tls() {
    let fixture = Fixture::get();
    let query = format!("sslmode=verify-full&sslrootcert={}", fixture.file("ca.pem"));
    let db = Db::connect(
        fixture
            .builder("localhost", &query)
            .statement_timeout(Some(Duration::from_millis(100)))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let health = db.check().await;
    assert_eq!(health.status, HealthStatus::Pass, "{health:?}");
    let response = db
        .health_routes()
        .oneshot(Request::get("/health/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let error = db.query("SELECT pg_sleep(2)", &[]).await.unwrap_err();
    assert_eq!(
        error.sqlstate(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{error}"
    );
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_failing_tls_connection_never_prints_the_password() {
    let fixture = Fixture::get();
    let logs = Logs::capture();
    let query = format!(
        "sslmode=verify-full&sslrootcert={}",
        fixture.file("other-ca.pem")
    );
    let config = fixture.builder("localhost", &query).build().unwrap();
    let mut printed = vec![format!("{config:?}")];
    let builder = fixture.builder("localhost", &query);
    printed.push(format!("{builder:?}"));

    // A pool that cannot connect: its health check, and the error of a query.
    let db = Db::connect(config).await.unwrap();
    printed.push(format!("{db:?}"));
    let health = db.check().await;
    assert_eq!(health.status, HealthStatus::Fail);
    printed.push(format!("{health:?}"));
    let ready = db
        .health_routes()
        .oneshot(Request::get("/health/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    printed.push(body_text(ready.into_response()).await);

    let error = db.query("SELECT 1", &[]).await.unwrap_err();
    assert!(matches!(error, DbError::Tls { .. }), "{error:?}");
    printed.push(error.to_string());
    printed.push(format!("{error:?}"));
    printed.push(body_text(error.into_response()).await);

    // Connecting with warm-up fails at once.
    let warm = fixture
        .builder("localhost", &query)
        .min_connections(1)
        .build()
        .unwrap();
    let error = Db::connect(warm).await.unwrap_err();
    assert!(matches!(error, DbError::Tls { .. }), "{error:?}");
    printed.push(error.to_string());
    printed.push(format!("{error:?}"));

    // A connection string that does not parse.
    let bad = DbConfig::from_url(&format!(
        "postgres://postgres:{PASSWORD}@localhost:notaport/postgres?sslmode=verify-full"
    ))
    .unwrap_err();
    printed.push(bad.to_string());
    printed.push(format!("{bad:?}"));

    printed.push(logs.text());
    assert!(
        logs.text().contains("database error"),
        "the error response logged: {}",
        logs.text()
    );
    for text in printed {
        assert!(!text.contains(PASSWORD), "the password was printed: {text}");
    }
}

async fn body_text(response: axum::response::Response) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}
