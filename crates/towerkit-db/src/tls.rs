//! TLS to PostgreSQL: [`SslMode`] with libpq's meanings, the `ssl*` connection parameters
//! that towerkit reads itself (tokio-postgres' parser rejects `verify-ca`, `verify-full` and
//! the file options), and, with the `tls` feature, the rustls client config they make.
//!
//! The rustls config is built with the `ring` provider passed explicitly, never rustls'
//! process-wide default, so a binary that also links another provider (aws-lc-rs through
//! some other crate) never has two providers meet in this client.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::ConfigError;

/// Whether and how a connection uses TLS, with the meanings libpq gives `sslmode`.
///
/// | mode | encrypts | verifies the certificate chain | verifies the host name |
/// |---|---|---|---|
/// | `disable` | no | – | – |
/// | `prefer` (the default, as in libpq) | if the server offers TLS, else plain | only with `sslrootcert` | no |
/// | `require` | yes, or fails | only with `sslrootcert` (libpq's rule) | no |
/// | `verify-ca` | yes, or fails | yes | no |
/// | `verify-full` | yes, or fails | yes | yes |
///
/// The chain is checked against `sslrootcert` (a PEM bundle) when given, else against the
/// system's root certificates (also with `sslrootcert=system`). Under `require`,
/// `verify-ca` and `verify-full` a server without TLS, or a certificate that fails a check,
/// fails the connection with [`DbError::Tls`](crate::DbError::Tls): never a plain fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked
    /// unless `sslrootcert` is set.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked unless `sslrootcert` is set.
    Require,
    /// TLS, with the server certificate's chain checked against the trusted roots.
    VerifyCa,
    /// TLS, with the chain checked and the certificate valid for the host name connected to.
    VerifyFull,
}

impl SslMode {
    /// The `sslmode` value: `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// The mode tokio-postgres negotiates with: the `verify-*` modes require TLS, and the
    /// checks are the rustls config's.
    pub(crate) fn negotiation(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self {
            Self::Disable => Pg::Disable,
            Self::Prefer => Pg::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Pg::Require,
        }
    }

    /// The mode of a tokio-postgres config.
    pub(crate) fn from_pg(mode: tokio_postgres::config::SslMode) -> Self {
        use tokio_postgres::config::SslMode as Pg;
        match mode {
            Pg::Disable => Self::Disable,
            Pg::Require => Self::Require,
            _ => Self::Prefer,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConfigError;

    /// Parses an `sslmode` value; libpq's `allow` is not supported (it means "plain
    /// unless the server insists", which towerkit never wants).
    fn from_str(value: &str) -> Result<Self, ConfigError> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            _ => Err(ConfigError::Invalid {
                field: "sslmode",
                reason: "must be disable, prefer, require, verify-ca or verify-full",
            }),
        }
    }
}

/// The TLS settings of a config: from the connection string's `ssl*` parameters, then the
/// builder's setters over them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub(crate) mode: Option<SslMode>,
    pub(crate) root_cert: Option<PathBuf>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
}

impl TlsParams {
    /// `self` with each setting of `over` that is set replacing its own.
    pub(crate) fn overridden_by(self, over: &TlsParams) -> TlsParams {
        TlsParams {
            mode: over.mode.or(self.mode),
            root_cert: over.root_cert.clone().or(self.root_cert),
            cert: over.cert.clone().or(self.cert),
            key: over.key.clone().or(self.key),
        }
    }

    /// Takes one `ssl*` parameter that towerkit handles; `false` for any other key.
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "sslmode" => self.mode = Some(value.parse()?),
            "sslrootcert" => self.root_cert = Some(PathBuf::from(value)),
            "sslcert" => self.cert = Some(PathBuf::from(value)),
            "sslkey" => self.key = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Splits the `ssl*` parameters towerkit handles (`sslmode`, `sslrootcert`, `sslcert`,
/// `sslkey`) out of a connection string, in the `postgres://` URL form (query parameters)
/// or the `key=value` form, and returns the rest for tokio-postgres. A string whose
/// parameters do not parse is returned whole, for tokio-postgres to name the problem.
pub(crate) fn split_params(url: &str) -> Result<(String, TlsParams), ConfigError> {
    let mut params = TlsParams::default();
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_url(url, &mut params)?
    } else {
        split_key_values(url, &mut params)?
    };
    Ok((rest, params))
}

/// The URL form: after the user info (up to the first `@`, as tokio-postgres reads it), the
/// query starts at the first `?`; its `&`-separated pairs are percent-decoded.
fn split_url(url: &str, params: &mut TlsParams) -> Result<String, ConfigError> {
    let after_userinfo = url.find('@').map_or(0, |at| at + 1);
    let Some(question) = url[after_userinfo..].find('?').map(|q| q + after_userinfo) else {
        return Ok(url.to_owned());
    };
    let mut rest = url[..question].to_owned();
    let mut separator = '?';
    for pair in url[question + 1..].split('&') {
        let handled = match pair.split_once('=') {
            Some((key, value)) => {
                let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
                let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                params.take(&key, &value)?
            }
            None => false,
        };
        if !handled {
            rest.push(separator);
            rest.push_str(pair);
            separator = '&';
        }
    }
    Ok(rest)
}

/// The `key=value` form, with tokio-postgres' (libpq's) grammar: whitespace between
/// pairs and around `=`, values quoted with `'` or not, `\` escaping the next character.
fn split_key_values(s: &str, params: &mut TlsParams) -> Result<String, ConfigError> {
    let mut rest = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    let end_of = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        chars.peek().map_or(s.len(), |&(i, _)| i)
    };
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let start = end_of(&mut chars);
        if start == s.len() {
            return Ok(rest);
        }
        while chars
            .next_if(|&(_, c)| !c.is_whitespace() && c != '=')
            .is_some()
        {}
        let key = &s[start..end_of(&mut chars)];
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|&(_, c)| c == '=').is_none() {
            // Not this grammar: tokio-postgres names the problem.
            return Ok(s.to_owned());
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match chars.next() {
                    None => return Ok(s.to_owned()),
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => value.extend(chars.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next().map(|(_, c)| c));
                } else {
                    value.push(c);
                }
            }
        }
        let end = end_of(&mut chars);
        if !params.take(key, &value)? {
            if !rest.is_empty() {
                rest.push(' ');
            }
            rest.push_str(&s[start..end]);
        }
    }
}

/// The rustls side, with the `tls` feature.
#[cfg(feature = "tls")]
pub(crate) mod rustls_config {
    use std::path::Path;
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

    use super::{SslMode, TlsParams};
    use crate::error::ConfigError;

    /// The rustls client config for these settings, or `None` for `disable`.
    pub(crate) fn client_config(params: &TlsParams) -> Result<Option<ClientConfig>, ConfigError> {
        let mode = params.mode.unwrap_or_default();
        if mode == SslMode::Disable {
            return Ok(None);
        }
        // rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange;
        // ring is kept because it builds without cmake or a C++ toolchain and keeps one
        // provider in the binary. PostgreSQL servers offer no post-quantum groups yet.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("sslmode", e.to_string()))?;
        // libpq checks the chain under `prefer` and `require` too when a root certificate
        // is given; without one, those two encrypt without checking.
        let check_chain =
            matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) || params.root_cert.is_some();
        let builder = if check_chain {
            let roots = Arc::new(roots(params.root_cert.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| tls_error("sslrootcert", e.to_string()))?;
            if mode == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki)
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
            }
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCheck(provider)))
        };
        let mut config = match (&params.cert, &params.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs("sslcert", cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| tls_error("sslkey", format!("{}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_error("sslcert", e.to_string()))?
            }
            (Some(_), None) => return Err(tls_error("sslkey", "missing: `sslcert` needs it")),
            (None, Some(_)) => return Err(tls_error("sslcert", "missing: `sslkey` needs it")),
        };
        // What PostgreSQL 17's direct TLS negotiation asks for; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Some(config))
    }

    fn tls_error(field: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Tls {
            field,
            reason: reason.into(),
        }
    }

    /// The trusted roots: the PEM bundle at `path`, or the system's without one (or with
    /// libpq's `system`).
    fn roots(path: Option<&Path>) -> Result<RootCertStore, ConfigError> {
        let mut store = RootCertStore::empty();
        match path {
            Some(path) if path != Path::new("system") => {
                for cert in read_certs("sslrootcert", path)? {
                    store.add(cert).map_err(|e| {
                        tls_error("sslrootcert", format!("{}: {e}", path.display()))
                    })?;
                }
            }
            _ => {
                let native = rustls_native_certs::load_native_certs();
                store.add_parsable_certificates(native.certs);
                if store.is_empty() {
                    return Err(tls_error(
                        "sslrootcert",
                        "not set, and no system root certificates were found",
                    ));
                }
            }
        }
        Ok(store)
    }

    fn read_certs(
        field: &'static str,
        path: &Path,
    ) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| tls_error(field, format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(tls_error(
                field,
                format!("{}: no PEM certificate in it", path.display()),
            ));
        }
        Ok(certs)
    }

    /// `verify-ca` (and `prefer`/`require` with a root certificate): the chain is checked,
    /// the host name is not. webpki checks the name after the chain, so only a name
    /// mismatch is forgiven.
    #[derive(Debug)]
    struct ChainOnly(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            match self.0.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }

    /// `prefer` and `require` without a root certificate: encrypted, the certificate taken
    /// as presented (libpq's meaning). The handshake's signatures are still checked, so the
    /// peer holds the key of the certificate it sent.
    #[derive(Debug)]
    struct NoCheck(Arc<CryptoProvider>);

    impl ServerCertVerifier for NoCheck {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

/// Why a TLS connection to the database failed, read from the driver's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate is not signed by a trusted root (`sslrootcert` or the
    /// system's).
    UnknownIssuer,
    /// The server's certificate is not valid for the host name connected to
    /// (`verify-full`).
    WrongHostName,
    /// The server's certificate has expired or is not valid yet.
    Expired,
    /// The certificate was rejected for another reason (bad signature, wrong purpose,
    /// revoked, ...).
    BadCertificate,
    /// The server does not accept TLS, and the `sslmode` requires it.
    NotOffered,
    /// The server rejected our client certificate, or asked for one we do not have.
    ClientCertificate,
    /// The handshake failed otherwise (no common protocol version or cipher, ...).
    Handshake,
}

impl TlsFailure {
    /// What went wrong, in words for a log line.
    pub fn reason(self) -> &'static str {
        match self {
            Self::UnknownIssuer => "the server certificate is not signed by a trusted CA",
            Self::WrongHostName => "the server certificate is not valid for the host name",
            Self::Expired => "the server certificate has expired or is not valid yet",
            Self::BadCertificate => "the server certificate was rejected",
            Self::NotOffered => "the server does not accept TLS",
            Self::ClientCertificate => "the server rejected the client certificate",
            Self::Handshake => "the TLS handshake failed",
        }
    }

    /// The failure behind a connect error of the driver, when it is one of TLS.
    pub(crate) fn of(error: &tokio_postgres::Error) -> Option<Self> {
        let cause = std::error::Error::source(error)?;
        #[cfg(feature = "tls")]
        {
            // tokio-rustls wraps the rustls error in an io::Error, whose own `source`
            // skips it: look inside.
            let rustls_error = cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            if let Some(rustls_error) = rustls_error {
                return Some(Self::of_rustls(rustls_error));
            }
        }
        // tokio-postgres' own error when the server answers `N` to the TLS request.
        if cause.to_string() == "server does not support TLS" {
            return Some(Self::NotOffered);
        }
        None
    }

    #[cfg(feature = "tls")]
    fn of_rustls(error: &rustls::Error) -> Self {
        use rustls::{AlertDescription as Alert, CertificateError as Cert};
        match error {
            rustls::Error::InvalidCertificate(cert) => match cert {
                Cert::UnknownIssuer => Self::UnknownIssuer,
                Cert::NotValidForName | Cert::NotValidForNameContext { .. } => Self::WrongHostName,
                Cert::Expired
                | Cert::ExpiredContext { .. }
                | Cert::NotValidYet
                | Cert::NotValidYetContext { .. } => Self::Expired,
                _ => Self::BadCertificate,
            },
            rustls::Error::AlertReceived(
                Alert::BadCertificate
                | Alert::UnknownCA
                | Alert::CertificateRequired
                | Alert::CertificateUnknown
                | Alert::CertificateExpired
                | Alert::AccessDenied,
            ) => Self::ClientCertificate,
            _ => Self::Handshake,
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, TlsParams) {
        split_params(url).unwrap()
    }

    #[test]
    fn url_ssl_params_are_taken_and_the_rest_kept_in_order() {
        let (rest, params) = split(
            "postgres://u:p%3Fw@db.internal:5432/shop?application_name=api&sslmode=verify-full\
             &sslrootcert=/etc/ca%20bundle.pem&connect_timeout=5&sslcert=/c.pem&sslkey=/k.pem",
        );
        assert_eq!(
            rest,
            "postgres://u:p%3Fw@db.internal:5432/shop?application_name=api&connect_timeout=5"
        );
        assert_eq!(params.mode, Some(SslMode::VerifyFull));
        assert_eq!(
            params.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca bundle.pem"))
        );
        assert_eq!(params.cert.as_deref(), Some(std::path::Path::new("/c.pem")));
        assert_eq!(params.key.as_deref(), Some(std::path::Path::new("/k.pem")));
    }

    #[test]
    fn a_url_with_only_ssl_params_loses_its_question_mark() {
        let (rest, params) = split("postgresql://u@h/db?sslmode=require");
        assert_eq!(rest, "postgresql://u@h/db");
        assert_eq!(params.mode, Some(SslMode::Require));
        let (rest, params) = split("postgres://u@h/db");
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(params, TlsParams::default());
    }

    #[test]
    fn a_question_mark_in_the_password_is_not_the_query() {
        let (rest, params) = split("postgres://u:a?b@h/db?sslmode=verify-ca");
        assert_eq!(rest, "postgres://u:a?b@h/db");
        assert_eq!(params.mode, Some(SslMode::VerifyCa));
    }

    #[test]
    fn key_value_ssl_params_are_taken() {
        let (rest, params) = split(
            "host=db user=u password='se cr\\'et' sslmode = verify-full sslrootcert='/ca dir/ca.pem' dbname=shop",
        );
        assert_eq!(rest, "host=db user=u password='se cr\\'et' dbname=shop");
        assert_eq!(params.mode, Some(SslMode::VerifyFull));
        assert_eq!(
            params.root_cert.as_deref(),
            Some(std::path::Path::new("/ca dir/ca.pem"))
        );
    }

    #[test]
    fn an_unknown_sslmode_is_named_without_its_value() {
        let err = split_params("postgres://u:hunter2@h/db?sslmode=hunter2").unwrap_err();
        assert_eq!(
            err,
            ConfigError::Invalid {
                field: "sslmode",
                reason: "must be disable, prefer, require, verify-ca or verify-full",
            }
        );
        assert!(!err.to_string().contains("hunter2"));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_client_certificate_needs_its_key_and_unreadable_files_are_named() {
        let err = crate::DbConfig::from_url("postgres://u@h/db?sslmode=require&sslcert=/c.pem")
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Tls {
                    field: "sslkey",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = crate::DbConfig::from_url(
            "postgres://u:hunter2@h/db?sslmode=require&sslcert=/nonexistent/c.pem&sslkey=/k.pem",
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Tls {
                    field: "sslcert",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn modes_parse_and_print_as_libpq_spells_them() {
        for mode in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(mode.as_str().parse::<SslMode>(), Ok(mode));
        }
        assert_eq!(SslMode::default(), SslMode::Prefer);
    }
}
