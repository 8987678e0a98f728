#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves the documented behaviour of DKIM keys that cannot be used:
#   (a) a private key readable by its group (mode 0640) is refused by `milter-warden -n`
#       (exit 1) and at start (the daemon exits 1), the message naming the file and
#       "0640"; with dkim_require_safe_keys = no, -n accepts it;
#   (b) a 1024-bit RSA key is refused (file and size named) unless dkim_min_rsa_bits = 1024;
#   (c) `-n` compares each key with its record in DNS (dnsmasq on loopback): the matching
#       key passes; a record holding another key and a missing record are errors naming
#       the selector's DNS name; a DNS server that does not answer is only a warning;
#   (d) a running daemon signs with an RSA and an Ed25519 key; then the Ed25519 key file is
#       removed, then replaced with garbage, then made group-readable: each reload fails
#       ("keeping the running configuration", the file named) and mail is still signed with
#       both keys; the good file back, the reload succeeds; a 1024-bit key loads after
#       dkim_min_rsa_bits = 1024 and its signatures verify;
#   (e) a message the daemon cannot sign (an end-of-message rule changes the already signed
#       Subject) gets 451 4.7.0 with dkim_on_key_error = tempfail (the default) and is not
#       delivered, logged with dkim=error; with dkim_on_key_error = accept it is delivered
#       unsigned and the log says why (dkim=unsigned reason=key-error plus a warning);
#   (f) a Subject prefix added by an end-of-headers rule is in the signed message, and the
#       signature verifies.
# Every signature is checked with python3-dkim and OpenDKIM. Loopback is trusted (default
# trusted_networks), so every message sent here is outbound.
. "$(dirname "$0")/lib.sh"
it_init
pf_open_relay
dkim_keygen good rsa
dkim_keygen ed ed25519
dkim_keygen small rsa1024
dkim_keygen loose rsa
dkim_keygen other rsa
chmod 0640 "$(dkim_key loose)"
dkim_publish sel1 example.org good
dkim_publish ed1 example.org ed
dkim_publish old small.example small
dkim_publish loose example.org loose
# The record of "wrong" holds another key than the one configured for it.
dkim_publish wrong example.org other
dns_local example.org
dns_silent down.example
dns_start

base=(dns_servers="127.0.0.1:$DNS_PORT" dns_timeout=1 authserv_id=mx.mw-test.example)

# run_cli OUTFILE ARGS...: run the binary (bounded), CLI_RC its exit status, output in OUTFILE.
run_cli() {
	local out=$1
	shift
	CLI_RC=0
	timeout $((20 * SCALE)) "$MW_BIN" "$@" </dev/null >"$out" 2>&1 || CLI_RC=$?
	sed 's/^/  | /' "$out"
	((CLI_RC != 124)) || fail "milter-warden $* did not finish within $((20 * SCALE))s"
}

# check NAME KEY=VALUE...: milter-warden -n on the harness configuration plus KEY=VALUEs.
check() {
	local name=$1
	shift
	mw_config "${base[@]}" "$@"
	run_cli "$T/out/check-$name" -n -c "$MW_CONF"
	CHECK_OUT=$(cat "$T/out/check-$name")
}

# --- (a) group-readable key
loose=$(dkim_key loose)
check loose dkim_keys="example.org:loose:$loose"
assert_eq "$CLI_RC" 1 "(a) -n refuses a key of mode 0640"
assert_match "$CHECK_OUT" "$(ere_quote "$loose").*0640|0640.*$(ere_quote "$loose")" \
	"(a) -n names the key file and its mode 0640"
mw_spawn "$MW_CONF" "$T/log/start-loose.log"
pid=$SPAWNED_PID
MW_EXTRA_PIDS+=("$pid")
wait_gone "$pid" $((10 * SCALE)) || fail "(a) the daemon still runs 10s after starting with a 0640 key"
rc=0
wait "$pid" || rc=$?
sed 's/^/  | /' "$T/log/start-loose.log"
assert_eq "$rc" 1 "(a) the daemon refuses to start with it (exit 1)"
assert_match "$(cat "$T/log/start-loose.log")" "$(ere_quote "$loose").*0640|0640.*$(ere_quote "$loose")" \
	"(a) its message names the key file and mode 0640"
[[ ! -e $T/run/mw.sock ]] || fail "(a) the refused start left a socket behind"
check loose-allowed dkim_keys="example.org:loose:$loose" dkim_require_safe_keys=no
assert_eq "$CLI_RC" 0 "(a) with dkim_require_safe_keys = no, -n accepts it"

# --- (b) 1024-bit RSA key
small=$(dkim_key small)
check small dkim_keys="small.example:old:$small"
assert_eq "$CLI_RC" 1 "(b) -n refuses a 1024-bit key"
assert_match "$CHECK_OUT" "$(ere_quote "$small").*1024" "(b) -n names the key file and its 1024 bits"
check small-allowed dkim_keys="small.example:old:$small" dkim_min_rsa_bits=1024
assert_eq "$CLI_RC" 0 "(b) with dkim_min_rsa_bits = 1024, -n accepts it"

# --- (c) -n compares the keys with DNS
good=$(dkim_key good)
ed=$(dkim_key ed)
check dns-ok dkim_keys="example.org:sel1:$good, example.org:ed1:$ed"
assert_eq "$CLI_RC" 0 "(c) -n accepts keys that match their DNS records (RSA and Ed25519)"
assert_no_match "$CHECK_OUT" '(error|warning)' "(c) and reports nothing about them"
check dns-mismatch dkim_keys="example.org:wrong:$good"
assert_eq "$CLI_RC" 1 "(c) -n refuses a key whose DNS record holds another key"
assert_match "$CHECK_OUT" 'wrong\._domainkey\.example\.org' "(c) naming wrong._domainkey.example.org"
check dns-missing dkim_keys="example.org:absent:$good"
assert_eq "$CLI_RC" 1 "(c) -n refuses a key with no DNS record"
assert_match "$CHECK_OUT" 'absent\._domainkey\.example\.org' "(c) naming absent._domainkey.example.org"
check dns-down dkim_keys="down.example:sel1:$good"
assert_eq "$CLI_RC" 0 "(c) a DNS server that does not answer does not fail -n"
assert_match "$CHECK_OUT" '[Ww]arning.*sel1\._domainkey\.down\.example|sel1\._domainkey\.down\.example.*([Tt]ime|DNS|answer)' \
	"(c) but is reported for sel1._domainkey.down.example"

# --- (d) reloads with a broken key keep the last good keys
rules_write "$T/late.rules" <<'RULES'
rule late-subject at eom when header "X-Late-Edit" present then prefix-subject "[late] "
rule early-subject at eoh when header "X-Early-Edit" present then prefix-subject "[early] "
RULES
rules_check "$T/late.rules" "the test's rules load"
rules="$MW_RULES, $T/late.rules"
mw_config "${base[@]}" rules="$rules" dkim_keys="example.org:sel1:$good, example.org:ed1:$ed"
it_start

delivered=0
two=("d=example.org s=sel1 a=rsa-sha256" "d=example.org s=ed1 a=ed25519-sha256")
# outbound WHAT FROM [HEADER]: send a message From: FROM (one extra HEADER line on top);
# sets TX, QID, TOK.
outbound() {
	TOK=$(unique_token)
	mkmsg "$T/msg/$TOK.eml" "$1" "$TOK" "$2" friend@remote.example
	[[ -z ${3:-} ]] || sed -i "1i $3" "$T/msg/$TOK.eml"
	TX=$(send --from "$2" --to friend@remote.example --data "@$T/msg/$TOK.eml")
	QID=$(queue_id "$TX")
}
# signed WHAT FROM SPEC...: outbound, delivered, signed with exactly SPECs, verified.
signed() {
	local what=$1 from=$2
	shift 2
	outbound "$what" "$from"
	assert_match "$TX" '^<-  250 2\.0\.0 Ok: queued as ' "$what: accepted"
	delivered=$((delivered + 1))
	wait_for_delivery "$delivered"
	dkim_capture "$TOK" "$T/msg/got.$TOK.eml" "$what: relayed"
	dkim_assert_signed "$T/msg/got.$TOK.eml" "$what" "$@"
}
# reload_fails WHAT FILE: a reload that must fail naming FILE.
reload_fails() {
	mw_reload
	assert_match "$RELOAD_LINE" 'reload: failed, keeping the running configuration' "$1: the reload fails"
	assert_match "$(log_since "$MW_LOG" "$RELOAD_MARK")" "$(ere_quote "$2")" "$1: the error names $2"
	alive "$MW_PID" || fail "$1: the daemon died"
}

signed "(d) before" alice@example.org "${two[@]}"
mv "$ed" "$ed.saved"
reload_fails "(d) key file removed" "$ed"
signed "(d) after the failed reload (removed)" alice@example.org "${two[@]}"
printf 'this is not a key\n' >"$ed"
chown "$MW_USER:" "$ed"
chmod 0600 "$ed"
reload_fails "(d) key file with garbage" "$ed"
signed "(d) after the failed reload (garbage)" alice@example.org "${two[@]}"
cp -p "$ed.saved" "$ed"
chmod 0644 "$ed"
reload_fails "(d) key file readable by all" "$ed"
assert_match "$(log_since "$MW_LOG" "$RELOAD_MARK")" "$(ere_quote "$ed").*0644" "(d) the error names mode 0644"
signed "(d) after the failed reload (0644)" alice@example.org "${two[@]}"
chmod 0600 "$ed"
mw_config "${base[@]}" rules="$rules" dkim_min_rsa_bits=1024 \
	dkim_keys="example.org:sel1:$good, example.org:ed1:$ed, small.example:old:$small"
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "(d) the good key file back (and a 1024-bit key allowed): reloaded"
signed "(d) after the good reload" alice@example.org "${two[@]}"
signed "(d) the 1024-bit key" bob@small.example "d=small.example s=old a=rsa-sha256"

# --- (e) a message that cannot be signed
mark=$(log_mark "$MW_LOG")
outbound "(e) late edit" alice@example.org "X-Late-Edit: yes"
late_tok=$TOK
assert_match "$TX" '^<\*\* 451 4\.7\.0 ' "(e) tempfail: the client gets 451 4.7.0 at end of data"
line=$(log_since "$MW_LOG" "$mark" | grep -E 'action=tempfail' || true)
assert_match "$line" 'action=tempfail code=451 dsn=4\.7\.0( |$)' "(e) tempfail: logged as action=tempfail code=451"
assert_match "$line" ' dkim=error .*Subject' "(e) tempfail: with dkim=error and the cause (the changed Subject)"
mw_config "${base[@]}" rules="$rules" dkim_min_rsa_bits=1024 dkim_on_key_error=accept \
	dkim_keys="example.org:sel1:$good, example.org:ed1:$ed, small.example:old:$small"
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "(e) dkim_on_key_error = accept: reloaded"
mark=$(log_mark "$MW_LOG")
outbound "(e) late edit, accept" alice@example.org "X-Late-Edit: yes"
assert_match "$TX" '^<-  250 2\.0\.0 Ok: queued as ' "(e) accept: the message is accepted"
delivered=$((delivered + 1))
wait_for_delivery "$delivered"
dkim_capture "$TOK" "$T/msg/got.e.eml" "(e) accept: delivered"
assert_eq "$(dkim_sigs "$T/msg/got.e.eml")" "" "(e) accept: unsigned"
assert_match "$(sink_header "$SINK_FILE" Subject)" '^Subject: \[late\] ' "(e) accept: with the late Subject prefix"
assert_match "$(dkim_log_line "$QID")" ' dkim=unsigned reason=key-error( |$)' \
	"(e) accept: the log line says dkim=unsigned reason=key-error"
assert_match "$(log_since "$MW_LOG" "$mark")" "warning: $QID: dkim=error .*Subject" \
	"(e) accept: a warning names the cause (the changed Subject)"
assert_eq "$(sink_find "$late_tok")" "" "(e) the tempfailed message was not delivered"

# --- (f) a Subject prefix made at end of headers is signed as changed
outbound "(f) early edit" alice@example.org "X-Early-Edit: yes"
assert_match "$TX" '^<-  250 2\.0\.0 Ok: queued as ' "(f) accepted"
delivered=$((delivered + 1))
wait_for_delivery "$delivered"
dkim_capture "$TOK" "$T/msg/got.f.eml" "(f) relayed"
assert_match "$(sink_header "$SINK_FILE" Subject)" '^Subject: \[early\] \(f\) early edit$' "(f) the Subject carries the prefix"
dkim_assert_signed "$T/msg/got.f.eml" "(f) signed after the prefix" "${two[@]}"

assert_queue_empty "nothing left in the Postfix queue"
mw_stop
