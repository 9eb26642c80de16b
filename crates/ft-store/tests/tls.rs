//! PostgreSQL over TLS against a server of the test's own (`ssl = on`, a certificate signed by a
//! throwaway CA made with the `openssl` command). With the `pg-tls` feature: sslmode=require,
//! verify-ca and verify-full connect, store and read over TLS, and a wrong CA is refused with a
//! clear error. Without it: a URL asking for TLS is refused up front with the fix, and
//! sslmode=prefer still connects, in plain text.

use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::prelude::*;
use ft_store::test_support::OwnPgServer;
use ft_store::{Store, StoreError};

/// Never needed by the server (trust authentication): it is in the URLs to show that no error
/// message leaks it.
const PASSWORD: &str = "hunter2-tls";

/// The server and the CA files a client may name in sslrootcert.
struct TlsServer {
    server: OwnPgServer,
    certs: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> TlsServer {
        let certs = tempfile::Builder::new()
            .prefix("ft42-tls-certs-")
            .tempdir()
            .unwrap();
        let dir = certs.path();
        std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (name, cn) in [("ca", "ft42 test CA"), ("other-ca", "ft42 other CA")] {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-config",
                    "openssl.cnf",
                    "-extensions",
                    "ca",
                ],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.crt"),
                    "-days",
                    "3",
                    "-subj",
                    &format!("/CN={cn}"),
                ],
            );
        }
        openssl(
            dir,
            &["req", "-new", "-config", "openssl.cnf"],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=ft42 test server",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
            ],
            &["-set_serial", "2", "-days", "3"],
            &[
                "-extfile",
                "openssl.cnf",
                "-extensions",
                "server",
                "-out",
                "server.crt",
            ],
        );
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
        let (crt, key) = (read("server.crt"), read("server.key"));
        let server = OwnPgServer::start(
            &[("server.crt", &crt), ("server.key", &key)],
            &[
                ("ssl", "on"),
                ("ssl_cert_file", "server.crt"),
                ("ssl_key_file", "server.key"),
            ],
        );
        TlsServer { server, certs }
    }

    fn ca(&self, name: &str) -> PathBuf {
        self.certs.path().join(format!("{name}.crt"))
    }

    /// The URL of database `postgres` with these query parameters.
    fn url(&self, params: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres?{params}",
            self.server.port()
        )
    }

    /// Whether each connection to the server (other than the one asking) uses TLS, as the
    /// server sees it: the store's pooled connections.
    fn others_ssl(&self) -> Vec<bool> {
        let mut conn = PgConnection::establish(&self.url("sslmode=disable")).unwrap();
        diesel::sql_query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.backend_type = 'client backend' AND s.pid <> pg_backend_pid()",
        )
        .load::<Ssl>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|row| row.ssl)
        .collect()
    }
}

/// One row of `pg_stat_ssl.ssl`.
#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ssl: bool,
}

/// Whether the server sees this connection as TLS.
fn own_ssl(url: &str) -> bool {
    let mut conn = PgConnection::establish(url).unwrap();
    diesel::sql_query("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .get_result::<Ssl>(&mut conn)
        .unwrap()
        .ssl
}

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

fn openssl(dir: &Path, a: &[&str], b: &[&str], c: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(a)
        .args(b)
        .args(c)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "this test makes its certificates with the `openssl` command ({e}); install it \
                 (Debian: apt-get install openssl, done by scripts/ensure-build-deps as root)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {a:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A migrated store on `url` takes a row and gives it back.
fn store_round_trip(url: &str) -> Store {
    use crate::common::{ts, user, users_of};
    use ft_store::{ApplyPage, Rows, Table};
    let store = Store::open(url).unwrap_or_else(|e| panic!("opening {url}: {e}"));
    store.migrate().unwrap();
    let written = store
        .apply_page(ApplyPage::rows(Rows::Users(vec![user(
            42,
            "tls",
            Some(ts(0)),
        )])))
        .unwrap();
    assert_eq!(written.written, 1);
    let users = users_of(store.load_rows(Table::Users).unwrap());
    assert_eq!(
        users.iter().map(|u| u.login.as_str()).collect::<Vec<_>>(),
        ["tls"]
    );
    store
}

#[cfg(feature = "pg-tls")]
#[test]
fn with_pg_tls_the_store_talks_tls_and_checks_the_server_certificate() {
    let tls = TlsServer::start();

    // sslmode=require: encrypted, the certificate is not checked.
    let url = tls.url("sslmode=require");
    let store = store_round_trip(&url);
    let others = tls.others_ssl();
    assert!(!others.is_empty(), "the store holds a pooled connection");
    assert!(
        others.iter().all(|ssl| *ssl),
        "every connection of the store uses TLS: {others:?}"
    );
    assert!(own_ssl(&url), "sslmode=require connects over TLS");
    drop(store);

    // The server is checked against the CA that signed its certificate.
    let ca = tls.ca("ca");
    for mode in ["verify-ca", "verify-full"] {
        let url = tls.url(&format!("sslmode={mode}&sslrootcert={}", ca.display()));
        let store = Store::open(&url).unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(
            store.count(ft_store::Table::Users, true).unwrap(),
            1,
            "{mode}"
        );
        assert!(own_ssl(&url), "{mode}");
    }

    // Another CA did not sign it: refused, with the reason and without the password.
    let url = tls.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        tls.ca("other-ca").display()
    ));
    let err = Store::open(&url).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Connect { .. }), "{message}");
    assert!(message.contains("certificate verify failed"), "{message}");
    assert!(message.contains("sslrootcert"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
    assert!(!format!("{err:?}").contains(PASSWORD));

    // prefer takes TLS when the server offers it; disable does not.
    assert!(own_ssl(&tls.url("sslmode=prefer")));
    assert!(!own_ssl(&tls.url("sslmode=disable")));
}

#[cfg(not(feature = "pg-tls"))]
#[test]
fn without_pg_tls_a_url_asking_for_tls_is_refused_up_front() {
    let tls = TlsServer::start();

    // Refused while the URL is parsed, with the fix, though the server is up and offers TLS:
    // the error is `BadUrl`, not a failed connection.
    let ca = tls.ca("ca");
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = tls.url(&format!("sslmode={mode}&sslrootcert={}", ca.display()));
        let err = Store::open(&url).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::BadUrl { .. }), "{message}");
        assert!(
            message.contains("built without TLS for PostgreSQL"),
            "{message}"
        );
        assert!(message.contains("--features pg-tls"), "{message}");
        assert!(message.contains(&format!("(sslmode={mode})")), "{message}");
        assert!(message.contains("postgres:***@127.0.0.1"), "{message}");
        assert!(!message.contains(PASSWORD), "{message}");
        assert!(!format!("{err:?}").contains(PASSWORD));
    }

    // prefer (libpq's default) still connects to a server that offers TLS, in plain text.
    let url = tls.url("sslmode=prefer");
    let store = store_round_trip(&url);
    let others = tls.others_ssl();
    assert!(!others.is_empty(), "the store holds a pooled connection");
    assert!(others.iter().all(|ssl| !ssl), "{others:?}");
    assert!(!own_ssl(&url));
    drop(store);
    assert!(!own_ssl(&tls.url("sslmode=allow")));
}
