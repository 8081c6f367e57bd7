#!/usr/bin/env bash
# Generate the test PKI for gio-dtls-openssl with the openssl CLI (OpenSSL 3.0+).
#
# Usage: tests/files/make-pki.sh OUTDIR
#
# Everything is written to OUTDIR (created if missing) under fixed names; a
# second run into the same directory regenerates every file. Keys are EC P-256
# (fast); see tests/files/README.md for what each file is for.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

OUT=$1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/make-pki.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Never let a user or system openssl.cnf change what we generate.
CNF=$WORK/openssl.cnf
export OPENSSL_CONF=$CNF
ORG="gio-dtls-openssl tests"

cat >"$CNF" <<EOF
# Minimal config: only what req/x509/ca below need.
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused

[ext_root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[ext_intermediate]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ext_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:server.example.com,DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ext_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:client.example.com
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ext_self_signed]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:server.example.com,DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash

# "openssl ca" is only used where an explicit notBefore/notAfter is needed
# (OpenSSL 3.0's "x509 -req" has no -not_before/-not_after).
[ca]
default_ca = test_ca
[test_ca]
dir = $WORK/ca
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
organizationName = optional
EOF
mkdir -p "$WORK/ca/newcerts"
: >"$WORK/ca/index.txt"
echo 1000 >"$WORK/ca/serial"

# Run a command with its chatter hidden; show it if the command fails.
run() {
    if ! "$@" 2>"$WORK/stderr" >"$WORK/stdout"; then
        echo "make-pki: command failed: $*" >&2
        cat "$WORK/stdout" "$WORK/stderr" >&2
        exit 1
    fi
}

serial=0
next_serial() {
    serial=$((serial + 1))
    # Unique per run: random 32-bit prefix + counter.
    printf '0x%08x%04x' "$(( (RANDOM << 16) | RANDOM ))" "$serial"
}

genkey() { # genkey NAME  -> NAME.key (EC P-256, PKCS#8, unencrypted)
    run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$OUT/$1.key"
}

csr() { # csr NAME SUBJECT -> $WORK/NAME.csr
    run openssl req -new -key "$OUT/$1.key" -subj "$2" -out "$WORK/$1.csr"
}

sign() { # sign NAME ISSUER EXT DAYS [extra x509 args...] -> NAME.pem
    local name=$1 issuer=$2 ext=$3 days=$4
    shift 4
    run openssl x509 -req -in "$WORK/$name.csr" -CA "$OUT/$issuer.pem" -CAkey "$OUT/$issuer.key" \
        -set_serial "$(next_serial)" -days "$days" -extfile "$CNF" -extensions "$ext" \
        "$@" -out "$OUT/$name.pem"
}

sign_dated() { # sign_dated NAME ISSUER EXT STARTDATE ENDDATE -> NAME.pem
    local name=$1 issuer=$2 ext=$3 start=$4 end=$5
    run openssl ca -batch -notext -preserveDN -in "$WORK/$name.csr" \
        -cert "$OUT/$issuer.pem" -keyfile "$OUT/$issuer.key" \
        -startdate "$start" -enddate "$end" \
        -extfile "$CNF" -extensions "$ext" -out "$WORK/$name.ca-out"
    run openssl x509 -in "$WORK/$name.ca-out" -out "$OUT/$name.pem"
}

selfsign() { # selfsign NAME SUBJECT EXT DAYS -> NAME.pem
    run openssl req -new -x509 -key "$OUT/$1.key" -subj "$2" -extensions "$3" -days "$4" \
        -set_serial "$(next_serial)" -out "$OUT/$1.pem"
}

utc() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

# --- CAs -------------------------------------------------------------------
genkey ca
selfsign ca "/CN=Test Root CA" ext_root 3650

genkey other-ca
selfsign other-ca "/CN=Other Test Root CA" ext_root 3650

genkey intermediate
csr intermediate "/O=$ORG/CN=Test Intermediate CA"
sign intermediate ca ext_intermediate 3650
# Same subject, same key, different issuer (other-ca): a cross-certificate.
cp "$OUT/intermediate.key" "$OUT/intermediate-cross.key"
run openssl x509 -req -in "$WORK/intermediate.csr" -CA "$OUT/other-ca.pem" -CAkey "$OUT/other-ca.key" \
    -set_serial "$(next_serial)" -days 3650 -extfile "$CNF" -extensions ext_intermediate \
    -out "$OUT/intermediate-cross.pem"
# The root itself cross-signed by other-ca (same subject and key as ca.pem):
# a server in a root transition sends leaf, intermediate, ca-cross, other-ca.
csr ca "/CN=Test Root CA"
run openssl x509 -req -in "$WORK/ca.csr" -CA "$OUT/other-ca.pem" -CAkey "$OUT/other-ca.key" \
    -set_serial "$(next_serial)" -days 3650 -extfile "$CNF" -extensions ext_root \
    -out "$OUT/ca-cross.pem"

# --- leaf certificates --------------------------------------------------------
SERVER_SUBJ="/O=$ORG/CN=server.example.com"

genkey server
csr server "$SERVER_SUBJ"
sign server ca ext_server 365

genkey server-expired
csr server-expired "$SERVER_SUBJ"
sign_dated server-expired ca ext_server "$(utc '-30 days')" "$(utc '-1 day')"

genkey server-future
csr server-future "$SERVER_SUBJ"
sign_dated server-future ca ext_server "$(utc '+30 days')" "$(utc '+400 days')"

genkey server-other-ca
csr server-other-ca "$SERVER_SUBJ"
sign server-other-ca other-ca ext_server 365

genkey self-signed
selfsign self-signed "$SERVER_SUBJ" ext_self_signed 365

# ecdsa-with-SHA1 signature: OpenSSL 3.0 rejects it from auth_level 1 on
# (X509_V_ERR_CA_MD_TOO_WEAK, "CA signature digest algorithm too weak").
genkey server-weak
csr server-weak "$SERVER_SUBJ"
sign server-weak ca ext_server 365 -sha1

genkey client
csr client "/O=$ORG/CN=client.example.com"
sign client ca ext_client 365

genkey leaf-int
csr leaf-int "$SERVER_SUBJ"
sign leaf-int intermediate ext_server 365

# --- bundles and other encodings ----------------------------------------------
cat "$OUT/server.pem" "$OUT/server.key" >"$OUT/server-key.pem"
cat "$OUT/leaf-int.pem" "$OUT/intermediate.pem" >"$OUT/chain-leaf-int.pem"
cat "$OUT/leaf-int.pem" "$OUT/intermediate.pem" "$OUT/ca.pem" >"$OUT/chain-full.pem"
cat "$OUT/leaf-int.pem" "$OUT/ca.pem" "$OUT/intermediate.pem" >"$OUT/chain-unordered.pem"
cat "$OUT/ca.pem" "$OUT/intermediate.pem" >"$OUT/ca-and-intermediate.pem"
cat "$OUT/ca.pem" "$OUT/other-ca.pem" >"$OUT/ca-bundle.pem"

run openssl x509 -in "$OUT/server.pem" -outform DER -out "$OUT/server.der"

# OpenSSL 3.0 defaults: AES-256-CBC + PBKDF2, SHA-256 MAC.
run openssl pkcs12 -export -in "$OUT/server.pem" -inkey "$OUT/server.key" -certfile "$OUT/ca.pem" \
    -name server -passout pass:secret -out "$OUT/server.p12"
run openssl pkcs12 -export -in "$OUT/server.pem" -inkey "$OUT/server.key" -certfile "$OUT/ca.pem" \
    -name server -passout pass: -out "$OUT/server-nopass.p12"

# --- broken inputs ------------------------------------------------------------
# Certificate followed by a private key that does not belong to it.
genkey unrelated
cat "$OUT/server.pem" "$OUT/unrelated.key" >"$OUT/mismatch-key.pem"
rm -f "$OUT/unrelated.key"

# A well-formed PEM block whose content is valid base64 but not DER.
{
    echo "-----BEGIN CERTIFICATE-----"
    printf 'This is not a DER encoded X.509 certificate, just text.' | openssl base64
    echo "-----END CERTIFICATE-----"
} >"$OUT/garbage.pem"

# server.pem cut in the middle of a base64 line: no END line at all.
awk 'NR <= 6 { print } NR == 7 { print substr($0, 1, 30) }' "$OUT/server.pem" >"$OUT/truncated.pem"
# server.pem with its base64 cut at a line boundary but a proper END line:
# PEM framing and base64 are fine, the DER inside is truncated.
{ head -n 6 "$OUT/server.pem"; echo "-----END CERTIFICATE-----"; } >"$OUT/truncated-der.pem"

# Random bytes; first byte forced to something that is not a DER SEQUENCE.
{ printf '\xff'; head -c 511 /dev/urandom; } >"$OUT/garbage.der"

# --- self-checks --------------------------------------------------------------
check_ok() {
    openssl verify "$@" >/dev/null 2>&1 || { echo "make-pki: unexpected verify failure: $*" >&2; exit 1; }
}
check_err() { # check_err REGEX verify-args...
    local want=$1 out
    shift
    if out=$(openssl verify "$@" 2>&1); then
        echo "make-pki: verify unexpectedly succeeded: $*" >&2
        exit 1
    fi
    grep -q -- "$want" <<<"$out" || { echo "make-pki: expected '$want' from verify $*, got: $out" >&2; exit 1; }
}
check_ok -CAfile "$OUT/ca.pem" -purpose sslserver -verify_hostname server.example.com "$OUT/server.pem"
check_ok -CAfile "$OUT/ca.pem" -verify_ip ::1 "$OUT/server.pem"
check_ok -CAfile "$OUT/ca.pem" -purpose sslclient "$OUT/client.pem"
check_ok -CAfile "$OUT/ca.pem" -untrusted "$OUT/intermediate.pem" "$OUT/leaf-int.pem"
check_ok -CAfile "$OUT/other-ca.pem" -untrusted "$OUT/intermediate-cross.pem" "$OUT/leaf-int.pem"
check_ok -CAfile "$OUT/ca-and-intermediate.pem" -untrusted "$OUT/intermediate-cross.pem" "$OUT/leaf-int.pem"
cat "$OUT/intermediate.pem" "$OUT/ca-cross.pem" >"$WORK/transition.pem"
check_ok -CAfile "$OUT/other-ca.pem" -untrusted "$WORK/transition.pem" "$OUT/leaf-int.pem"
check_err "unable to get local issuer" -CAfile "$OUT/ca.pem" "$OUT/server-other-ca.pem"
check_err "has expired" -CAfile "$OUT/ca.pem" "$OUT/server-expired.pem"
check_err "not yet valid" -CAfile "$OUT/ca.pem" "$OUT/server-future.pem"
# X509_V_ERR_CA_MD_TOO_WEAK (68) at auth_level 1.
check_err "digest algorithm too weak" -auth_level 1 -CAfile "$OUT/ca.pem" "$OUT/server-weak.pem"
check_ok -auth_level 1 -CAfile "$OUT/ca.pem" "$OUT/server.pem"
run openssl pkcs12 -in "$OUT/server.p12" -noout -passin pass:secret
run openssl pkcs12 -in "$OUT/server-nopass.p12" -noout -passin pass:
if openssl pkcs12 -in "$OUT/server.p12" -noout -passin pass:wrong >/dev/null 2>&1; then
    echo "make-pki: server.p12 opens with a wrong password" >&2
    exit 1
fi

rm -f "$OUT"/*.srl
