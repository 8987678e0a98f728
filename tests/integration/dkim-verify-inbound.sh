#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: inbound mail (MX listener, unauthenticated, loopback not trusted) is verified and
# gets one Authentication-Results field of ours (authserv_id = mx.mw-test.example) on top,
# with the right result for each signature and its header.d, header.s and header.a, the
# same result in the log line. The messages are signed by OpenDKIM (opendkim -t, Debian's
# package) and their keys served by dnsmasq on loopback:
#   rsa-good         rsa-sha256 signature               -> dkim=pass
#   ed-good          ed25519-sha256 signature           -> dkim=pass
#   both-good        RSA and Ed25519 signatures         -> two dkim=pass clauses
#   body-altered     RSA signature, body changed after  -> dkim=fail
#   header-altered   Subject changed after signing      -> dkim=fail
#   wrong-key        DNS holds another key for s=       -> dkim=fail
#   key-missing      no key in DNS (NXDOMAIN)           -> dkim=permerror
#   dns-down         DNS does not answer                -> dkim=temperror
#   one-bad-one-good Ed25519 good, RSA body-altered      -> one pass, one fail
#   length-tag       l= shorter than the body (signed by python3-dkim; OpenDKIM never
#                    signs with l= unless told to)      -> not dkim=pass
#   unsigned                                            -> dkim=none
# Before sending, the test checks its premise with python3-dkim (good ones pass, broken ones
# do not). Then the forged-results case: a message carrying Authentication-Results with our
# authserv-id (twice, around others), with another authserv-id and with one that only starts
# like ours loses exactly the two forged fields; the other two arrive intact.
. "$(dirname "$0")/lib.sh"
it_init
pf_open_relay
dkim_keygen net-rsa rsa
dkim_keygen net-ed ed25519
dkim_keygen other rsa
dkim_publish rsa1 example.net net-rsa
dkim_publish ed1 example.net net-ed
dkim_publish wrong example.net other
dns_local example.net
dns_silent down.example
dns_start
# The verifiers' records also know what the test's DNS hides: the premise checks use them.
printf 'wrong._domainkey.example.net %s\n' "$(dkim_txt other)" >>"$DKIM_RECORDS"
mw_config trusted_networks=192.0.2.0/24 local_domains=example.org \
	dns_servers="127.0.0.1:$DNS_PORT" dns_timeout=2 authserv_id=mx.mw-test.example
it_start

AS=mx.mw-test.example
delivered=0

# base NAME: an unsigned message from someone@example.net to alice@example.org in
# $T/msg/NAME.eml; TOK is its token.
base() {
	TOK=$(unique_token)
	mkmsg "$T/msg/$1.eml" "inbound $1" "$TOK" someone@example.net alice@example.org
}

# inbound NAME FILE: send FILE on the MX listener, wait for it; GOT is the captured message,
# QID its queue id.
inbound() {
	local tx
	tx=$(send --from someone@example.net --to alice@example.org --data "@$2")
	assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "$1: accepted on the MX listener"
	QID=$(queue_id "$tx")
	delivered=$((delivered + 1))
	wait_for_delivery "$delivered"
	GOT=$T/msg/got.$1.eml
	dkim_capture "$TOK" "$GOT" "$1: delivered"
}

# expect NAME "RESULT d s a"...: our Authentication-Results (exactly one, the first header
# field) has exactly these clauses, in any order, and the log line the same results.
expect() {
	local name=$1 ar ours want res d s a line log
	shift
	ar=$(dkim_ar "$GOT")
	ours=$(grep -F "$AS"$'\t' <<<"$ar" || true)
	assert_match "$(dkim_field "$GOT" 0)" "^Authentication-Results: $(ere_quote "$AS");" \
		"$name: our Authentication-Results is the first field"
	assert_eq "$(grep -cix "Authentication-Results" <<<"$(dkim_fields "$GOT")")" 1 \
		"$name: exactly one Authentication-Results"
	assert_eq "$(grep -c . <<<"$ours")" "$#" "$name: $# result clause(s)"
	log=$(dkim_log_line "$QID")
	for want in "$@"; do
		read -r res d s a <<<"$want"
		if [[ $res == none ]]; then
			assert_match "$ours" "^$(ere_quote "$AS")"$'\t'"(none|dkim=none)\$" "$name: dkim=none"
			assert_match "$log" ' dkim=none( |$)' "$name: the log line says dkim=none"
			continue
		fi
		line=$(grep -E "^$(ere_quote "$AS")"$'\t'"dkim=[a-z]+ .*header\\.s=$(ere_quote "$s")( |\$)" <<<"$ours" | grep -F " header.a=$a" || true)
		[[ -n $line ]] || {
			printf -- '--- our clauses:\n%s\n' "$ours" | sed 's/^/  > /' >&2
			fail "$name: no clause for s=$s a=$a"
		}
		assert_match "$line" $'\t'"dkim=$res " "$name: s=$s a=$a: dkim=$res"
		assert_match "$line" " header\\.d=$(ere_quote "$d")( |\$)" "$name: s=$s a=$a: header.d=$d"
		assert_match "$log" " dkim=$res d=$(ere_quote "$d") s=$(ere_quote "$s") a=$(ere_quote "$a")( |\$)" \
			"$name: the log line says dkim=$res d=$d s=$s a=$a"
	done
}

# premise FILE VERDICT...: python3-dkim's verdicts on FILE before sending (records file).
premise() {
	local file=$1 got
	shift
	got=$(dkim_verify_py "$file" | cut -d' ' -f1 | tr '\n' ' ')
	assert_eq "${got% }" "$*" "premise: python3-dkim says '$*' on $(basename "$file")"
}

base rsa-good
dkim_od_sign "$T/msg/rsa-good.eml" "$T/msg/rsa-good.s" example.net rsa1 net-rsa
premise "$T/msg/rsa-good.s" pass
inbound rsa-good "$T/msg/rsa-good.s"
expect rsa-good "pass example.net rsa1 rsa-sha256"

base ed-good
dkim_od_sign "$T/msg/ed-good.eml" "$T/msg/ed-good.s" example.net ed1 net-ed ed25519-sha256
premise "$T/msg/ed-good.s" pass
inbound ed-good "$T/msg/ed-good.s"
expect ed-good "pass example.net ed1 ed25519-sha256"

base both-good
dkim_od_sign "$T/msg/both-good.eml" "$T/msg/both-good.1" example.net rsa1 net-rsa
dkim_od_sign "$T/msg/both-good.1" "$T/msg/both-good.s" example.net ed1 net-ed ed25519-sha256
premise "$T/msg/both-good.s" pass pass
inbound both-good "$T/msg/both-good.s"
expect both-good "pass example.net rsa1 rsa-sha256" "pass example.net ed1 ed25519-sha256"

base body-altered
dkim_od_sign "$T/msg/body-altered.eml" "$T/msg/body-altered.1" example.net rsa1 net-rsa
dkim_body_edit "$T/msg/body-altered.1" "$T/msg/body-altered.s"
premise "$T/msg/body-altered.s" fail
inbound body-altered "$T/msg/body-altered.s"
expect body-altered "fail example.net rsa1 rsa-sha256"

base header-altered
dkim_od_sign "$T/msg/header-altered.eml" "$T/msg/header-altered.1" example.net rsa1 net-rsa
sed 's/^Subject: inbound/Subject: changed/' "$T/msg/header-altered.1" >"$T/msg/header-altered.s"
premise "$T/msg/header-altered.s" fail
inbound header-altered "$T/msg/header-altered.s"
expect header-altered "fail example.net rsa1 rsa-sha256"

base wrong-key
dkim_od_sign "$T/msg/wrong-key.eml" "$T/msg/wrong-key.s" example.net wrong net-rsa
premise "$T/msg/wrong-key.s" fail
inbound wrong-key "$T/msg/wrong-key.s"
expect wrong-key "fail example.net wrong rsa-sha256"

base key-missing
dkim_od_sign "$T/msg/key-missing.eml" "$T/msg/key-missing.s" example.net gone net-rsa
assert_eq "$(dns_query gone._domainkey.example.net)" NXDOMAIN "premise: no key for s=gone in DNS"
inbound key-missing "$T/msg/key-missing.s"
expect key-missing "permerror example.net gone rsa-sha256"

TOK=$(unique_token)
mkmsg "$T/msg/dns-down.eml" "inbound dns-down" "$TOK" someone@down.example alice@example.org
dkim_od_sign "$T/msg/dns-down.eml" "$T/msg/dns-down.s" down.example sel1 net-rsa
assert_eq "$(dns_query sel1._domainkey.down.example)" TIMEOUT "premise: DNS does not answer for down.example"
inbound dns-down "$T/msg/dns-down.s"
expect dns-down "temperror down.example sel1 rsa-sha256"

base one-bad-one-good
dkim_od_sign "$T/msg/one-bad-one-good.eml" "$T/msg/one-bad-one-good.1" example.net rsa1 net-rsa
dkim_body_edit "$T/msg/one-bad-one-good.1" "$T/msg/one-bad-one-good.2"
dkim_od_sign "$T/msg/one-bad-one-good.2" "$T/msg/one-bad-one-good.s" example.net ed1 net-ed ed25519-sha256
premise "$T/msg/one-bad-one-good.s" "pass fail"
inbound one-bad-one-good "$T/msg/one-bad-one-good.s"
expect one-bad-one-good "fail example.net rsa1 rsa-sha256" "pass example.net ed1 ed25519-sha256"

base length-tag
dkim_py_sign "$T/msg/length-tag.eml" "$T/msg/length-tag.1" example.net rsa1 net-rsa l
printf 'Appended after signing: not covered by l=.\n' | cat "$T/msg/length-tag.1" - >"$T/msg/length-tag.s"
premise "$T/msg/length-tag.s" pass
assert_match "$(dkim_sigs "$T/msg/length-tag.s")" ' l=[0-9]+' "premise: the signature has l="
inbound length-tag "$T/msg/length-tag.s"
ours=$(dkim_ar "$GOT" | grep -F "$AS"$'\t' || true)
assert_match "$ours" 'dkim=[a-z]+ .*header\.s=rsa1' "length-tag: a clause for the l= signature"
assert_no_match "$ours" 'dkim=pass' "length-tag: an l= signature shorter than the body is not a pass"
assert_no_match "$(dkim_log_line "$QID")" ' dkim=pass ' "length-tag: nor in the log line"

base unsigned
inbound unsigned "$T/msg/unsigned.eml"
expect unsigned "none"

# --- forged Authentication-Results
base forged
{
	printf 'Authentication-Results: %s; dkim=pass header.d=paypal.example header.s=forged1\n' "$AS"
	printf 'Authentication-Results: other.example; dkim=pass header.d=kept.example header.s=keep1\n'
	printf 'Authentication-Results: %s;\n\tdkim=pass header.d=paypal.example header.s=forged2\n' "${AS^^}"
	printf 'Authentication-Results: %s.evil.example; dkim=pass header.d=kept.example header.s=keep2\n' "$AS"
	cat "$T/msg/forged.eml"
} >"$T/msg/forged.s"
inbound forged "$T/msg/forged.s"
ar=$(dkim_ar "$GOT")
note "Authentication-Results at the sink:"
while IFS= read -r l; do note "  $l"; done <<<"$ar"
assert_no_match "$ar" 'forged[12]|paypal\.example' "forged: both fields claiming our authserv-id are gone"
assert_match "$ar" $'^other\\.example\tdkim=pass header\\.d=kept\\.example header\\.s=keep1$' \
	"forged: the field of other.example is kept"
assert_match "$ar" "^$(ere_quote "$AS.evil.example")"$'\t'"dkim=pass header\\.d=kept\\.example header\\.s=keep2\$" \
	"forged: the field of $AS.evil.example (ours only as a prefix) is kept"
assert_match "$ar" "^$(ere_quote "$AS")"$'\t'"(none|dkim=none)\$" "forged: ours says dkim=none"
assert_eq "$(grep -c . <<<"$ar")" 3 "forged: three Authentication-Results fields in all"
assert_eq "$(grep -c '^X-MW-Test: header kept intact' "$GOT")" 1 "forged: the other header fields are intact"

assert_queue_empty "nothing left in the Postfix queue"
assert_no_log "milter-warden\[[0-9]+\]: error:" "milter-warden logged no error"
mw_stop
