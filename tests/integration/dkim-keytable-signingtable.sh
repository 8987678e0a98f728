#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: an existing OpenDKIM deployment's KeyTable and SigningTable work as they are
# (dkim_key_table, dkim_signing_table), and dkim_subdomains lets a subdomain sign with its
# parent's key. Mail from a trusted network (loopback, the default trusted_networks) is
# outbound; every signature made is checked with python3-dkim and OpenDKIM.
#   (a) refile: SigningTable, dkim_multiple_signatures = yes:
#         "ceo@example.com ceo", "*@example.com corp", "*@example.com corp-ed",
#         "*@sales.example.com sales", "*@*.example.net net"
#       bob@example.com -> corp (rsa) + corp-ed (ed25519); ceo@example.com -> ceo + corp +
#       corp-ed; carol@sales.example.com -> sales only (the *@example.com pattern does not
#       match a subdomain); dave@dept.example.net -> net (d=example.net); eve@example.net
#       (no line matches) and frank@other.example -> unsigned, reason=no-key;
#   (b) after a reload, a plain (exact) SigningTable, dkim_multiple_signatures = no:
#       "ceo@example.com ceo", "example.com corp": ceo@example.com -> ceo only (the address
#       line comes first), bob@example.com -> corp, carol@sales.example.com -> unsigned;
#   (c) after a reload, refile with a catch-all, multiple signatures off:
#       "*@example.com corp-ed", "* catchall": bob@example.com -> corp-ed only,
#       frank@other.example -> catchall (d=relay.example);
#   (d) after a reload, dkim_keys = example.org:sub1:KEY with dkim_subdomains = yes:
#       alice@dept.example.org -> d=example.org s=sub1, alice@example.org too;
#   (e) the same with dkim_subdomains = no: alice@dept.example.org -> unsigned reason=no-key,
#       alice@example.org still signed.
. "$(dirname "$0")/lib.sh"
it_init
pf_open_relay
for k in corp:rsa corp-ed:ed25519 ceo:rsa sales:rsa net:rsa catchall:ed25519 sub1:rsa; do
	dkim_keygen "${k%%:*}" "${k#*:}"
done
dkim_publish corp2026 example.com corp
dkim_publish ed2026 example.com corp-ed
dkim_publish ceo example.com ceo
dkim_publish s1 sales.example.com sales
dkim_publish net1 example.net net
dkim_publish all relay.example catchall
dkim_publish sub1 example.org sub1
dns_start

# KeyTable as OpenDKIM reads it: NAME DOMAIN:SELECTOR:KEYPATH; comments and blank lines.
mw_file_write "$T/KeyTable" <<EOF
# OpenDKIM KeyTable
corp      example.com:corp2026:$(dkim_key corp)
corp-ed   example.com:ed2026:$(dkim_key corp-ed)
ceo       example.com:ceo:$(dkim_key ceo)

sales     sales.example.com:s1:$(dkim_key sales)
net       example.net:net1:$(dkim_key net)
catchall  relay.example:all:$(dkim_key catchall)
EOF
mw_file_write "$T/SigningTable.refile" <<'EOF'
# OpenDKIM SigningTable (refile: patterns, first match first)
ceo@example.com        ceo
*@example.com          corp
*@example.com          corp-ed
*@sales.example.com    sales
*@*.example.net        net
EOF
mw_file_write "$T/SigningTable.plain" <<'EOF'
ceo@example.com    ceo
example.com        corp
EOF
mw_file_write "$T/SigningTable.catchall" <<'EOF'
*@example.com    corp-ed
*                catchall
EOF

base=(dns_servers="127.0.0.1:$DNS_PORT" dns_timeout=2 authserv_id=mx.mw-test.example)
mw_config "${base[@]}" dkim_key_table="$T/KeyTable" \
	dkim_signing_table="refile:$T/SigningTable.refile" dkim_multiple_signatures=yes
it_start

delivered=0
# outbound WHAT FROM [SPEC...]: send a message From: FROM from loopback (trusted); it must be
# relayed signed with exactly SPECs (none: unsigned, logged as dkim=unsigned reason=no-key).
outbound() {
	local what=$1 from=$2 tx qid got line spec
	shift 2
	TOK=$(unique_token)
	mkmsg "$T/msg/$TOK.eml" "$what" "$TOK" "$from" friend@remote.example
	tx=$(send --from "$from" --to friend@remote.example --data "@$T/msg/$TOK.eml")
	assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "$what: accepted"
	qid=$(queue_id "$tx")
	delivered=$((delivered + 1))
	wait_for_delivery "$delivered"
	got=$T/msg/got.$TOK.eml
	dkim_capture "$TOK" "$got" "$what: relayed"
	line=$(dkim_log_line "$qid")
	if (($# == 0)); then
		assert_eq "$(dkim_sigs "$got")" "" "$what: not signed"
		assert_match "$line" ' dkim=unsigned reason=no-key(-for-domain)?( |$)' "$what: logged dkim=unsigned reason=no-key"
		return 0
	fi
	dkim_assert_signed "$got" "$what" "$@"
	for spec in "$@"; do
		assert_match "$line" " dkim=signed .*$(ere_quote "$spec")( |\$)" "$what: the log line names $spec"
	done
}

note "--- (a) refile SigningTable, multiple signatures"
outbound "(a) bob@example.com" bob@example.com \
	"d=example.com s=corp2026 a=rsa-sha256" "d=example.com s=ed2026 a=ed25519-sha256"
outbound "(a) ceo@example.com" ceo@example.com "d=example.com s=ceo a=rsa-sha256" \
	"d=example.com s=corp2026 a=rsa-sha256" "d=example.com s=ed2026 a=ed25519-sha256"
outbound "(a) carol@sales.example.com" carol@sales.example.com \
	"d=sales.example.com s=s1 a=rsa-sha256"
outbound "(a) dave@dept.example.net" dave@dept.example.net "d=example.net s=net1 a=rsa-sha256"
outbound "(a) eve@example.net" eve@example.net
outbound "(a) frank@other.example" frank@other.example

note "--- (b) plain SigningTable, first match only"
mw_config "${base[@]}" dkim_key_table="$T/KeyTable" \
	dkim_signing_table="$T/SigningTable.plain" dkim_multiple_signatures=no
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "(b) reloaded"
outbound "(b) ceo@example.com" ceo@example.com "d=example.com s=ceo a=rsa-sha256"
outbound "(b) bob@example.com" bob@example.com "d=example.com s=corp2026 a=rsa-sha256"
outbound "(b) carol@sales.example.com" carol@sales.example.com

note "--- (c) refile SigningTable with a catch-all, first match only"
mw_config "${base[@]}" dkim_key_table="$T/KeyTable" \
	dkim_signing_table="refile:$T/SigningTable.catchall" dkim_multiple_signatures=no
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "(c) reloaded"
outbound "(c) bob@example.com" bob@example.com "d=example.com s=ed2026 a=ed25519-sha256"
outbound "(c) frank@other.example" frank@other.example "d=relay.example s=all a=ed25519-sha256"

note "--- (d) dkim_keys with dkim_subdomains = yes"
mw_config "${base[@]}" dkim_keys="example.org:sub1:$(dkim_key sub1)" dkim_subdomains=yes
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "(d) reloaded"
outbound "(d) alice@dept.example.org" alice@dept.example.org "d=example.org s=sub1 a=rsa-sha256"
outbound "(d) alice@example.org" alice@example.org "d=example.org s=sub1 a=rsa-sha256"

note "--- (e) dkim_subdomains = no"
mw_config "${base[@]}" dkim_keys="example.org:sub1:$(dkim_key sub1)" dkim_subdomains=no
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "(e) reloaded"
outbound "(e) alice@dept.example.org" alice@dept.example.org
outbound "(e) alice@example.org" alice@example.org "d=example.org s=sub1 a=rsa-sha256"

assert_queue_empty "nothing left in the Postfix queue"
assert_no_log "milter-warden\[[0-9]+\]: (error|warning):" "milter-warden logged no error or warning"
mw_stop
