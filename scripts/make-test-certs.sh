#!/usr/bin/env bash
# Makes Rouge's TEST-ONLY certificates in appliance/configs/tls/ with openssl; rerun it to
# renew them (valid for 10 years from the day it runs). Nothing made here is a real
# identity: the private keys are in the repository for everyone to read.
#
#   ca.crt                        "Rouge Test CA", the trust anchor of everything below
#   s3.rouge.test.crt/.key        ECDSA P-256: s3.rouge.test, *.s3.rouge.test, IP 198.18.1.100
#   s3.rouge.test-rsa.crt/.key    RSA 2048, the same names
#   admin.rouge.test.crt/.key     ECDSA P-256: admin.rouge.test (a second name for SNI tests)
#   member.crt/.key               ECDSA P-256 for https members: member.rouge.test,
#                                 IPs 198.18.2.11 to 198.18.2.14
#   client.crt/.key               ECDSA P-256 client certificate: CN ai-host-1.rouge.test
#   other-ca.crt                  "Rouge Other Test CA": trusted by nothing in Rouge
#   other.crt/.key                from the other CA: s3.rouge.test and IP 198.18.2.11,
#                                 server and client use (a member or client to refuse)
#
# Leaf files hold the leaf certificate only (the CA is the trust anchor); keys are PKCS#8.
set -euo pipefail
cd "$(dirname "$0")/../appliance/configs/tls"
DAYS=3650
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# ca NAME CN: a self-signed CA (its key stays in $tmp and is thrown away).
ca() {
    ec_key "$tmp/$1.key"
    openssl req -x509 -new -key "$tmp/$1.key" -sha256 -days "$DAYS" -subj "/O=Rouge TEST ONLY/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" -out "$1.crt"
}

# leaf CA OUT KEYTYPE CN SAN EKU: a certificate for OUT.key, signed by CA.
leaf() {
    local ca=$1 out=$2 type=$3 cn=$4 san=$5 eku=$6 ku
    if [[ $type == rsa ]]; then rsa_key "$out.key"; ku="digitalSignature,keyEncipherment"
    else ec_key "$out.key"; ku="digitalSignature"; fi
    openssl req -new -key "$out.key" -subj "/O=Rouge TEST ONLY/CN=$cn" -out "$tmp/$out.csr"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,$ku"
        echo "extendedKeyUsage=$eku"
        echo "subjectAltName=$san"
        echo "subjectKeyIdentifier=hash"
        echo "authorityKeyIdentifier=keyid"
    } >"$tmp/$out.ext"
    openssl x509 -req -in "$tmp/$out.csr" -CA "$ca.crt" -CAkey "$tmp/$ca.key" -CAcreateserial \
        -CAserial "$tmp/$ca.srl" -sha256 -days "$DAYS" -extfile "$tmp/$out.ext" -out "$out.crt" 2>/dev/null
    chmod 600 "$out.key"
}

S3_NAMES="DNS:s3.rouge.test,DNS:*.s3.rouge.test,IP:198.18.1.100"
ca ca "Rouge Test CA"
leaf ca s3.rouge.test ec s3.rouge.test "$S3_NAMES" serverAuth
leaf ca s3.rouge.test-rsa rsa s3.rouge.test "$S3_NAMES" serverAuth
leaf ca admin.rouge.test ec admin.rouge.test "DNS:admin.rouge.test" serverAuth
leaf ca member ec member.rouge.test \
    "DNS:member.rouge.test,IP:198.18.2.11,IP:198.18.2.12,IP:198.18.2.13,IP:198.18.2.14" serverAuth
leaf ca client ec ai-host-1.rouge.test "DNS:ai-host-1.rouge.test" clientAuth
ca other-ca "Rouge Other Test CA"
leaf other-ca other ec s3.rouge.test "DNS:s3.rouge.test,IP:198.18.2.11" serverAuth,clientAuth
echo "test certificates written to $(pwd) (TEST ONLY, valid $DAYS days)"
