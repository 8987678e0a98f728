#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: milter-warden alone closes the relay. The private Postfix is made an open relay on
# purpose (every loopback client in mynetworks, permit_mynetworks first, no recipient
# restrictions, sender routing allowed, no percent hack or bang-path rewriting), while
# milter-warden, with the shipped rules, does not trust the client (trusted_networks =
# 192.0.2.0/24) and takes mail for example.org only. On the MX listener:
#   - a local recipient is accepted and delivered;
#   - a remote recipient gets exactly "554 5.7.1 <addr>: Relay access denied" (rule
#     relay-denied), and so does every address that routes itself past example.org:
#     user%remote.example@example.org, remote.example!user@example.org,
#     @hop.example:user@example.org, "user@remote.example"@example.org,
#     user@remote.example@example.org. Postfix refuses none of them itself (each 554 is a
#     milter-reject in its log, there is no Postfix reject at all);
#   - a forged local envelope sender gets 550 5.7.1 at MAIL (rule spoofed-local-sender);
#   - a forged local From: header (alone, in a second mailbox, in a second From: field) gets
#     550 5.7.1 at end of data (rule spoofed-local-from);
#   - nothing refused reaches the sink: it holds the one local message and nothing else.
# Control: after a reload that trusts 127.0.0.0/8, the same Postfix accepts and delivers the
# remote and routed recipients, so the refusals above came from milter-warden and nothing else.
. "$(dirname "$0")/lib.sh"
it_init
pf_open_relay
mw_config trusted_networks=192.0.2.0/24 local_domains=example.org
it_start

# The Postfix under test really is open: what pf_open_relay promised is in force.
pfv() { postconf -c "$PF_DIR" -h "$1"; }
assert_eq "$(pfv mynetworks)" "127.0.0.0/8" "Postfix: every loopback client is in mynetworks"
assert_eq "$(pfv smtpd_relay_restrictions)" "permit_mynetworks, reject_unauth_destination" \
	"Postfix: relay restrictions permit mynetworks first"
assert_eq "$(pfv smtpd_recipient_restrictions)" "" "Postfix: no recipient restrictions"
assert_eq "$(pfv allow_untrusted_routing)/$(pfv allow_percent_hack)/$(pfv swap_bangpath)" \
	"yes/no/no" "Postfix: sender routing allowed and passed on as written"
assert_eq "$(pfv mydestination)" "" "Postfix: example.org is not a local domain of Postfix"

remote=rcpt@remote.example
routed=(
	'user%remote.example@example.org'
	'remote.example!user@example.org'
	'@hop.example:user@example.org'
	'"user@remote.example"@example.org'
	'user@remote.example@example.org'
)

# --- one transaction: a local recipient, a remote one, every routed form
tok=$(unique_token)
mkmsg "$T/msg/local" "for the local recipient only" "$tok" sender@outside.example user@example.org
session_open
session "MAIL sender@outside.example"
assert_match "$SESSION_REPLY" '^250 ' "MAIL FROM an outside sender is accepted"
session "RCPT user@example.org"
assert_match "$SESSION_REPLY" '^250 ' "the local recipient is accepted"
session "RCPT $remote"
assert_eq "$SESSION_REPLY" "554 5.7.1 <$remote>: Relay access denied" "the remote recipient is refused"
for r in "${routed[@]}"; do
	session "RCPT $r"
	assert_eq "$SESSION_REPLY" "554 5.7.1 <$r>: Relay access denied" "routed recipient $r is refused"
done
session "DATA $T/msg/local"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "the message is accepted for the local recipient"
qid=$(queue_id "$SESSION_REPLY")
session_close

wait_for_delivery 1
sink_one "$tok" "the local message was delivered once"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "user@example.org" \
	"delivered to the local recipient only, none of the refused ones"

# --- a transaction whose every recipient is refused: nothing is queued
tok_none=$(unique_token)
mkmsg "$T/msg/none" "nobody may get this" "$tok_none" sender@outside.example "$remote"
session_open
session "MAIL sender@outside.example"
session "RCPT $remote"
assert_eq "$SESSION_REPLY" "554 5.7.1 <$remote>: Relay access denied" "a lone remote recipient is refused"
session "RCPT ${routed[0]}"
assert_match "$SESSION_REPLY" '^554 5\.7\.1 ' "a lone routed recipient is refused"
session "DATA $T/msg/none"
assert_match "$SESSION_REPLY" '^(503|554) ' "DATA without an accepted recipient is refused"

# --- forged local envelope sender, at MAIL (same connection, after RSET)
session RSET
for s in someone@example.org SOMEONE@EXAMPLE.ORG.; do
	session "MAIL $s"
	assert_match "$SESSION_REPLY" "^550 5\.7\.1 <$(ere_quote "$s")>: " \
		"MAIL FROM:<$s> from the untrusted client gets 550 5.7.1"
	session RSET
done
session_close

# --- forged local From: header, at end of data
forged_from() { # FILE TOKEN FROM-LINE...
	local f=$1 t=$2
	shift 2
	{
		printf '%s\n' "$@"
		printf 'To: <user@example.org>\nSubject: forged From\nMessage-ID: <%s@mw-test.example>\n' "$t"
		printf '\nToken: %s\n' "$t"
	} >"$f"
}
declare -a forged_toks=()
i=0
for from in 'From: <someone@example.org>' \
	'From: <a@evil.example>, Someone <someone@EXAMPLE.org>' \
	$'From: <a@evil.example>\nFrom: <someone@example.org>'; do
	i=$((i + 1))
	t=$(unique_token)
	forged_toks+=("$t")
	forged_from "$T/msg/forged$i" "$t" "$from"
	session_open
	session "MAIL a@evil.example"
	assert_match "$SESSION_REPLY" '^250 ' "forged From: #$i: an outside envelope sender is accepted"
	session "RCPT user@example.org"
	assert_match "$SESSION_REPLY" '^250 ' "forged From: #$i: the local recipient is accepted"
	session "DATA $T/msg/forged$i"
	assert_match "$SESSION_REPLY" '^550 5\.7\.1 ' \
		"forged From: #$i (${from//$'\n'/ | }) is refused at end of data with 550 5.7.1"
	session_close
done

# --- nothing refused was delivered or left behind. The queue first: a message queued by
# mistake is either still there or already in the sink.
assert_queue_empty "nothing left in the Postfix queue"
assert_eq "$(sink_count)" 1 "the sink holds the one local message and nothing else"
for t in "$tok_none" "${forged_toks[@]}"; do
	assert_eq "$(sink_find "$t")" "" "refused message $t was not delivered"
done

# --- who refused what
nrefused=$((1 + ${#routed[@]} + 2))
assert_eq "$(grep -c -E "action=reject code=554 dsn=5\.7\.1 rule=relay-denied " "$MW_LOG")" "$nrefused" \
	"milter-warden logged each of the $nrefused refused recipients with rule=relay-denied"
assert_log ": $qid: .*from=<sender@outside\.example> rcpt=<$(ere_quote "$remote")> (.* )?rule=relay-denied " \
	"the remote recipient's refusal is logged under $qid"
assert_eq "$(grep -c -E "action=reject code=550 dsn=5\.7\.1 rule=spoofed-local-sender " "$MW_LOG")" 2 \
	"milter-warden logged both forged envelope senders with rule=spoofed-local-sender"
assert_eq "$(grep -c -E "action=reject code=550 dsn=5\.7\.1 rule=spoofed-local-from " "$MW_LOG")" 3 \
	"milter-warden logged the three forged From: headers with rule=spoofed-local-from"
# (Not "rcpt=<user@example.org>": the log names the source-routed recipient by its final
# address, and that one was refused.)
assert_no_log 'action=(reject|tempfail) .*reason="<user@example\.org>' "no refusal logged for the local recipient"
maillog=$(cat "$T/log/maillog")
for r in "$remote" "${routed[@]}"; do
	assert_match "$maillog" "milter-reject: RCPT from .*: 554 5\.7\.1 <$(ere_quote "$r")>: Relay access denied;" \
		"Postfix passed $r to the milter and logged the milter's 554"
done
assert_no_match "$maillog" 'NOQUEUE: reject: ' "Postfix refused nothing itself (no syntax or relay refusal of its own)"
assert_match "$maillog" 'milter-reject: END-OF-MESSAGE from .*: 5\.7\.1 ' \
	"Postfix logged the forged From: refusals at end of message"
assert_no_log "milter-warden\[[0-9]+\]: (error|warning):" "milter-warden logged no error or warning"

# --- control: the same Postfix relays all of it once milter-warden trusts the client
mw_config trusted_networks=127.0.0.0/8 local_domains=example.org
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "the reload trusting 127.0.0.0/8 succeeded"
tok_open=$(unique_token)
mkmsg "$T/msg/open" "relayed once the client is trusted" "$tok_open" sender@outside.example "$remote"
session_open
session "MAIL sender@outside.example"
for r in "$remote" "${routed[@]}"; do
	session "RCPT $r"
	assert_match "$SESSION_REPLY" '^250 ' "control: Postfix itself accepts $r"
done
session "DATA $T/msg/open"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "control: Postfix queues the relayed message"
session_close
wait_for_delivery 2
sink_one "$tok_open" "control: the relayed message reached the sink"
got=$(sink_rcpts "$SINK_FILE")
note "control: Postfix relayed to: $(paste -sd' ' <<<"$got")"
for r in "$remote" 'user%remote.example@example.org' 'remote.example!user@example.org' \
	'"user@remote.example"@example.org'; do
	assert_match "$got" "^$(ere_quote "$r")\$" "control: Postfix relays to $r as written"
done
mw_stop
