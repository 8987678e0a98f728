#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: on a submission listener (a second smtpd in the private master.cf with
# "-o milter_macro_daemon_name=ORIGINATING -o smtpd_sasl_auth_enable=yes", real Cyrus SASL
# over a sasldb2 file), the shipped submission rules make every user log in and send only as
# themselves, while Postfix itself would let anything through (open relay for loopback, no
# smtpd_sender_login_maps). milter-warden does not trust the client (trusted_networks =
# 192.0.2.0/24); sender_login_map gives alice@EXAMPLE.ORG the address alice@example.org.
#   (a) no AUTH: MAIL gets exactly "530 5.7.0 Authentication required"
#       (rule submission-auth-required);
#   (b) alice logged in (PLAIN, and again with LOGIN), sending as alice@example.org with
#       From: alice@example.org to a remote recipient: delivered (relaying is allowed after
#       login); milter-warden and Postfix both saw the login alice@EXAMPLE.ORG;
#   (c) alice with MAIL FROM:<bob@example.org>, and with a routed sender
#       <alice%evil.example@example.org>: exactly "553 5.7.1 <addr>: Sender address rejected:
#       not owned by user alice@EXAMPLE.ORG", the login being the {auth_authen} Postfix
#       logged (rule submission-sender-not-owned);
#   (d) alice with her own envelope sender but a From: that is not hers: a display name that
#       looks like hers ("alice@example.org" <mallory@evil.example>) gets 553 5.7.1 (rule
#       submission-from-not-owned); a second From: field, or a second mailbox in it, gets
#       550 5.7.1 (rule submission-one-from); all at end of data;
#   (e) a wrong password gets Postfix's own 535 5.7.8 (SASL really checks), and the milter
#       never sees a MAIL from that session;
# and the same client on the MX listener of the same Postfix is refused relaying (554), so
# the role really comes from {daemon_name}. Only the two messages of (b) reach the sink.
. "$(dirname "$0")/lib.sh"
it_init
pf_open_relay
sasl_setup EXAMPLE.ORG alice:alice-secret-1 bob:bob-secret-2
pf_listener SUBMIT_PORT milter_macro_daemon_name=ORIGINATING smtpd_sasl_auth_enable=yes
mw_file_write "$T/sender_logins" <<'MAP'
# login: addresses it may use as sender
alice@EXAMPLE.ORG: alice@example.org
bob@EXAMPLE.ORG: bob@example.org, @bob.example
MAP
mw_config trusted_networks=192.0.2.0/24 local_domains=example.org \
	sender_login_map="$T/sender_logins"
it_start
pf_wait_listening "$SUBMIT_PORT"
assert_eq "$(postconf -c "$PF_DIR" -h smtpd_sender_login_maps)" "" \
	"Postfix checks no sender ownership itself (no smtpd_sender_login_maps)"

login=alice@EXAMPLE.ORG
auth_alice=(--auth PLAIN --auth-user "$login" --auth-password alice-secret-1)
remote=friend@remote.example
declare -a refused_toks=()

# message FILE TOKEN FROM-LINE...: a message with the given From: line(s), to $remote.
message() {
	local f=$1 t=$2
	shift 2
	{
		printf '%s\n' "$@"
		printf 'To: <%s>\nSubject: submission test\nDate: %s\n' "$remote" "$(date -R)"
		printf 'Message-ID: <%s@mw-test.example>\n\nToken: %s\n' "$t" "$t"
	} >"$f"
}

# --- (a) no AUTH
t=$(unique_token)
refused_toks+=("$t")
message "$T/msg/a" "$t" 'From: <alice@example.org>'
mark=$(log_mark "$MW_LOG")
tx=$(send_port "$SUBMIT_PORT" --from alice@example.org --to "$remote" --data "@$T/msg/a")
assert_match "$tx" '^<\*\* 530 5\.7\.0 Authentication required$' "(a) MAIL without AUTH gets 530 5.7.0"
assert_match "$(log_since "$MW_LOG" "$mark")" \
	'from=<alice@example\.org> .*action=reject code=530 dsn=5\.7\.0 rule=submission-auth-required ' \
	"(a) milter-warden logged rule=submission-auth-required"

# --- (b) alice as herself, to a remote recipient: relayed after login (PLAIN, then LOGIN)
t_ok=$(unique_token)
message "$T/msg/b" "$t_ok" 'From: Alice <alice@example.org>'
tx=$(send_port "$SUBMIT_PORT" "${auth_alice[@]}" --from alice@example.org --to "$remote" \
	--data "@$T/msg/b")
assert_match "$tx" '^<-  235 2\.7\.0 Authentication successful$' "(b) alice logs in with PLAIN"
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "(b) her message to $remote is accepted"
qid=$(queue_id "$tx")
t_ok2=$(unique_token)
message "$T/msg/b2" "$t_ok2" 'From: alice@example.org'
tx=$(send_port "$SUBMIT_PORT" --auth LOGIN --auth-user "$login" --auth-password alice-secret-1 \
	--from alice@example.org --to "$remote" --data "@$T/msg/b2")
assert_match "$tx" '^<-  235 2\.7\.0 Authentication successful$' "(b) alice logs in with LOGIN"
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "(b) her second message is accepted"
qid2=$(queue_id "$tx")
wait_for_delivery 2
sink_one "$t_ok" "(b) the first message was relayed to the sink"
assert_eq "$(sink_rcpts "$SINK_FILE")" "$remote" "(b) to the remote recipient"
sink_one "$t_ok2" "(b) the second message was relayed to the sink"
maillog=$(cat "$T/log/maillog")
# What Postfix hands the milter as {auth_authen} is what it logs as sasl_username.
authen=$(sed -n "s/.*$qid: client=.*, sasl_method=PLAIN, sasl_username=\\([^ ,]*\\).*/\\1/p" \
	"$T/log/maillog" | head -n1)
assert_eq "$authen" "$login" "(b) Postfix authenticated the login as $login (user@REALM)"
assert_match "$maillog" "$qid2: client=.*, sasl_method=LOGIN, sasl_username=$(ere_quote "$login")\$" \
	"(b) and with LOGIN too"
assert_accept_logged "$qid" "(b) milter-warden accepted $qid"
assert_accept_logged "$qid2" "(b) milter-warden accepted $qid2"

# --- (c) alice claiming someone else's envelope sender
for s in bob@example.org 'alice%evil.example@example.org'; do
	t=$(unique_token)
	refused_toks+=("$t")
	message "$T/msg/c" "$t" "From: <$s>"
	mark=$(log_mark "$MW_LOG")
	tx=$(send_port "$SUBMIT_PORT" "${auth_alice[@]}" --from "$s" --to "$remote" --data "@$T/msg/c")
	assert_match "$tx" '^<-  235 ' "(c) alice is logged in"
	assert_match "$tx" "^<\\*\\* $(ere_quote "553 5.7.1 <$s>: Sender address rejected: not owned by user $authen")\$" \
		"(c) MAIL FROM:<$s> gets 553 5.7.1 naming the login $authen"
	assert_match "$(log_since "$MW_LOG" "$mark")" \
		"action=reject code=553 dsn=5\\.7\\.1 rule=submission-sender-not-owned " \
		"(c) milter-warden logged rule=submission-sender-not-owned for <$s>"
done

# --- (d) her own envelope sender, a From: header that is not (only) hers
i=0
for case in \
	'553|submission-from-not-owned|From: "alice@example.org" <mallory@evil.example>' \
	$'550|submission-one-from|From: <alice@example.org>\nFrom: <mallory@evil.example>' \
	'550|submission-one-from|From: <alice@example.org>, <mallory@evil.example>'; do
	i=$((i + 1))
	code=${case%%|*}
	rest=${case#*|}
	rule=${rest%%|*}
	from=${rest#*|}
	t=$(unique_token)
	refused_toks+=("$t")
	message "$T/msg/d$i" "$t" "$from"
	mark=$(log_mark "$MW_LOG")
	tx=$(send_port "$SUBMIT_PORT" "${auth_alice[@]}" --from alice@example.org --to "$remote" \
		--data "@$T/msg/d$i")
	what="(d) ${from//$'\n'/ | }"
	assert_match "$tx" '^<-  250 2\.1\.0 ' "$what: her envelope sender is accepted"
	assert_match "$tx" "^<\\*\\* $code 5\\.7\\.1 " "$what: refused at end of data with $code 5.7.1"
	assert_match "$(log_since "$MW_LOG" "$mark")" \
		"action=reject code=$code dsn=5\\.7\\.1 rule=$rule " "$what: logged with rule=$rule"
done

# --- (e) wrong password: Postfix's own refusal; the milter sees no transaction
mark=$(log_mark "$MW_LOG")
pf_mark=$(log_mark "$T/log/maillog")
tx=$(send_port "$SUBMIT_PORT" --auth PLAIN --auth-user "$login" --auth-password wrong-password \
	--from alice@example.org --to "$remote" --data "@$T/msg/b")
assert_match "$tx" '^<\*\* 535 5\.7\.8 ' "(e) a wrong password gets Postfix's 535 5.7.8"
assert_no_match "$tx" '^ -> MAIL ' "(e) the client got no further than AUTH"
assert_match "$(log_since "$T/log/maillog" "$pf_mark")" \
	"SASL PLAIN authentication failed: .*sasl_username=$(ere_quote "$login")" \
	"(e) Postfix logged the failed SASL login"
assert_no_match "$(log_since "$MW_LOG" "$mark")" 'action=' "(e) milter-warden made no decision for it"

# --- the same client on the MX listener: relaying refused (role from {daemon_name})
mark=$(log_mark "$MW_LOG")
tx=$(send --from someone@outside.example --to "$remote" --data "@$T/msg/b")
assert_match "$tx" "^<\\*\\* $(ere_quote "554 5.7.1 <$remote>: Relay access denied")\$" \
	"the MX listener of the same Postfix refuses to relay for the same client"
assert_match "$(log_since "$MW_LOG" "$mark")" 'rule=relay-denied ' "logged with rule=relay-denied"

# --- nothing refused was delivered (the queue first: see relay-closed-by-milter.sh)
assert_queue_empty "nothing left in the Postfix queue"
assert_eq "$(sink_count)" 2 "the sink holds alice's two messages and nothing else"
for t in "${refused_toks[@]}"; do
	assert_eq "$(sink_find "$t")" "" "refused message $t was not delivered"
done
assert_no_match "$(cat "$T/log/maillog")" 'NOQUEUE: reject: ' "Postfix's own restrictions refused nothing"
assert_no_log "milter-warden\[[0-9]+\]: (error|warning):" "milter-warden logged no error or warning"
mw_stop
