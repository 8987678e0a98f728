#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: mail that alice submits after logging in (submission listener, real Cyrus SASL, as in
# submission-requires-auth.sh) leaves Postfix DKIM-signed by milter-warden, and the signature
# holds up under two verifiers outside milter-warden, python3-dkim (no code in common) and
# OpenDKIM (opendkim -t), reading the public keys from the test's own records:
#   (a) From: alice@rsa.example (one RSA-2048 key): one rsa-sha256 signature;
#   (b) From: alice@ed.example (one Ed25519 key): one ed25519-sha256 signature (RFC 8463);
#   (c) From: alice@example.org (an RSA and an Ed25519 key): both signatures;
# each time the signature fields come first, above Postfix's Received field, are
# relaxed/relaxed, name From twice in h= (oversigned) and carry no l=; both verifiers pass
# every signature; the log line says dkim=signed with d=, s= and a= of each signature; and
# the captured message with one body character changed, or with a second From: field on
# top, fails every signature in both verifiers;
#   (d) From: alice@nokey.example (no key for that domain): delivered unsigned, and the log
#       line says dkim=unsigned reason=no-key;
#   (e) the same kind of message arriving unauthenticated on the MX listener (From: a domain
#       milter-warden has a key for, to a local domain) is not signed: no DKIM-Signature,
#       no dkim=signed in its log line.
# milter-warden does not trust loopback (trusted_networks = 192.0.2.0/24), so only the login
# makes mail outbound. Key lookups go to dnsmasq on loopback.
. "$(dirname "$0")/lib.sh"
it_init
pf_open_relay
sasl_setup EXAMPLE.ORG alice:alice-secret-1
pf_listener SUBMIT_PORT milter_macro_daemon_name=ORIGINATING smtpd_sasl_auth_enable=yes

dkim_keygen org-rsa rsa
dkim_keygen org-ed ed25519
dkim_keygen rsaonly rsa
dkim_keygen edonly ed25519
dkim_publish rsa2026 example.org org-rsa
dkim_publish ed2026 example.org org-ed
dkim_publish r1 rsa.example rsaonly
dkim_publish e1 ed.example edonly
dns_start

mw_file_write "$T/sender_logins" <<'MAP'
alice@EXAMPLE.ORG: alice@example.org, alice@rsa.example, alice@ed.example, alice@nokey.example
MAP
mw_config trusted_networks=192.0.2.0/24 local_domains=example.org \
	sender_login_map="$T/sender_logins" \
	dkim_keys="example.org:rsa2026:$(dkim_key org-rsa), example.org:ed2026:$(dkim_key org-ed), rsa.example:r1:$(dkim_key rsaonly), ed.example:e1:$(dkim_key edonly)" \
	dns_servers="127.0.0.1:$DNS_PORT" dns_timeout=2 authserv_id=mx.mw-test.example
it_start
pf_wait_listening "$SUBMIT_PORT"

auth_alice=(--auth PLAIN --auth-user alice@EXAMPLE.ORG --auth-password alice-secret-1)
remote=friend@remote.example
delivered=0

# submit FROM WHAT: alice sends a message with From: FROM to $remote; sets QID and TOK.
submit() {
	local tx
	TOK=$(unique_token)
	mkmsg "$T/msg/$TOK.eml" "DKIM signing test" "$TOK" "$1" "$remote"
	tx=$(send_port "$SUBMIT_PORT" "${auth_alice[@]}" --from "$1" --to "$remote" \
		--data "@$T/msg/$TOK.eml")
	assert_match "$tx" '^<-  235 2\.7\.0 ' "$2: alice is logged in"
	assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "$2: accepted"
	QID=$(queue_id "$tx")
	delivered=$((delivered + 1))
	wait_for_delivery "$delivered"
}

# signed_case WHAT FROM SPEC...: submit, then check the relayed message and the log line.
signed_case() {
	local what=$1 from=$2 spec line got
	shift 2
	submit "$from" "$what"
	got=$T/msg/got.$TOK.eml
	dkim_capture "$TOK" "$got" "$what: relayed to the sink"
	dkim_assert_signed "$got" "$what" "$@"
	line=$(dkim_log_line "$QID")
	assert_match "$line" ' dkim=signed ' "$what: the log line says dkim=signed"
	for spec in "$@"; do
		assert_match "$line" " $(ere_quote "$spec")( |\$)" "$what: the log line names $spec"
	done
	dkim_body_edit "$got" "$T/msg/body.$TOK.eml"
	dkim_assert_not_verified "$T/msg/body.$TOK.eml" "$what: one body character changed"
	dkim_add_header "$got" "$T/msg/from.$TOK.eml" "From: <mallory@evil.example>"
	dkim_assert_not_verified "$T/msg/from.$TOK.eml" "$what: a second From: added on top"
}

signed_case "(a) RSA" alice@rsa.example "d=rsa.example s=r1 a=rsa-sha256"
signed_case "(b) Ed25519" alice@ed.example "d=ed.example s=e1 a=ed25519-sha256"
signed_case "(c) RSA and Ed25519" alice@example.org \
	"d=example.org s=rsa2026 a=rsa-sha256" "d=example.org s=ed2026 a=ed25519-sha256"

# --- (d) no key for the From: domain
submit alice@nokey.example "(d) no key"
dkim_capture "$TOK" "$T/msg/got.d.eml" "(d) relayed to the sink"
assert_eq "$(dkim_sigs "$T/msg/got.d.eml")" "" "(d) no DKIM-Signature without a key"
assert_match "$(dkim_log_line "$QID")" ' dkim=unsigned reason=no-key(-for-domain)?( |$)' \
	"(d) the log line says dkim=unsigned reason=no-key"

# --- (e) unauthenticated MX traffic to a local domain, From: a domain with a key
TOK=$(unique_token)
mkmsg "$T/msg/mx.eml" "inbound" "$TOK" someone@rsa.example alice@example.org
tx=$(send --from someone@rsa.example --to alice@example.org --data "@$T/msg/mx.eml")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "(e) the MX listener accepts mail for alice"
QID=$(queue_id "$tx")
delivered=$((delivered + 1))
wait_for_delivery "$delivered"
dkim_capture "$TOK" "$T/msg/got.e.eml" "(e) relayed to the sink"
assert_eq "$(dkim_sigs "$T/msg/got.e.eml")" "" "(e) inbound mail is not signed"
line=$(dkim_log_line "$QID")
assert_match "$line" "action=accept" "(e) milter-warden accepted it"
assert_no_match "$line" 'dkim=signed' "(e) the log line does not say dkim=signed"

assert_queue_empty "nothing left in the Postfix queue"
assert_no_log "milter-warden\[[0-9]+\]: (error|warning):" "milter-warden logged no error or warning"
mw_stop
