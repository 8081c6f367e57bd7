//! Demo: what GIO sees when `GIO_USE_TLS=dtls-openssl` selects our module.
//! Run by `tools/demo.sh`, which builds the module and a test PKI.
//!
//! Uses only GIO's API: this is what any GLib application gets.

use gio::prelude::*;

fn main() {
    let pki = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: demo PKI_DIR"));
    let backend = gio::TlsBackend::default();
    println!("TLS backend:      {}", backend.type_().name());
    println!("supports DTLS:    {}", backend.supports_dtls());
    println!("certificate type: {}", backend.certificate_type().name());
    if backend.type_().name() != "DtlsOpensslBackend" {
        eprintln!("the dtls-openssl module was not loaded: check GIO_MODULE_DIR / GIO_EXTRA_MODULES");
        std::process::exit(1);
    }

    let cert = gio::TlsCertificate::from_file(pki.join("chain-full.pem")).expect("load chain");
    println!("\ncertificate chain-full.pem:");
    println!("  subject:    {}", cert.subject_name().unwrap_or_default());
    println!("  issuer:     {}", cert.issuer_name().unwrap_or_default());
    let fmt = |d: Option<glib::DateTime>| d.and_then(|d| d.format_iso8601().ok()).map(|s| s.to_string()).unwrap_or_default();
    println!("  valid:      {} .. {}", fmt(cert.not_valid_before()), fmt(cert.not_valid_after()));
    let dns: Vec<String> = cert.dns_names().iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
    let ips: Vec<String> = cert.ip_addresses().iter().map(|a| a.to_string().to_string()).collect();
    println!("  DNS names:  {}", dns.join(", "));
    println!("  IPs:        {}", ips.join(", "));
    let mut depth = 0;
    let mut next = cert.issuer();
    while let Some(c) = next {
        depth += 1;
        println!("  issuer[{depth}]:  {}", c.subject_name().unwrap_or_default());
        next = c.issuer();
    }

    let db = gio::TlsFileDatabase::new(pki.join("ca.pem")).expect("CA database");
    for name in ["server.example.com", "wrong.example.com"] {
        let id = gio::NetworkAddress::new(name, 0);
        let flags = db
            .verify_chain(
                &cert,
                gio::TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER,
                Some(&id),
                None::<&gio::TlsInteraction>,
                gio::TlsDatabaseVerifyFlags::NONE,
                gio::Cancellable::NONE,
            )
            .expect("verify");
        println!("verify as {name:<20} → {flags:?}");
    }
}
