#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: a rule at rcpt refuses one recipient and only that one. With a relay rule
# ("list local domain {...}" and "reject 554 5.7.1 "<%{rcpt}>: Relay access denied"" when the
# recipient's domain is not local), a transaction with a local and a non-local recipient gets
# exactly "554 5.7.1 <addr>: Relay access denied" for the non-local one (the reply text
# interpolated with that recipient), 250 for the local one, and the message is delivered to the
# local recipient only. milter-warden logs the refusal with rule=relay and the recipient, and
# the accept at end of message with nrcpt=1; Postfix logs the milter-reject.
. "$(dirname "$0")/lib.sh"
it_init
rules_write "$T/relay.rules" <<'RULES'
# Mail for these domains (and their subdomains) is ours; everything else is relaying.
list local domain { mw-test.example, example.org }
rule relay at rcpt when not rcpt.domain in local
    then reject 554 5.7.1 "<%{rcpt}>: Relay access denied"
RULES
rules_check "$T/relay.rules" "the relay rules load"
mw_config rules="$T/relay.rules"
it_start

tok=$(unique_token)
mkmsg "$T/msg/m1" "one local, one foreign recipient" "$tok" sender@mw-test.example bob@sub.example.org eve@example.com
session_open
session "MAIL sender@mw-test.example"
assert_match "$SESSION_REPLY" '^250 ' "MAIL FROM accepted"
session "RCPT bob@sub.example.org"
assert_match "$SESSION_REPLY" '^250 ' "the local recipient (a subdomain of a listed domain) is accepted"
session "RCPT eve@example.com"
assert_eq "$SESSION_REPLY" "554 5.7.1 <eve@example.com>: Relay access denied" \
	"the non-local recipient gets exactly the rule's reply, interpolated"
session "DATA $T/msg/m1"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "the message is accepted for the local recipient"
qid=$(queue_id "$SESSION_REPLY")
session_close

wait_for_delivery 1
sink_one "$tok" "the message was delivered once"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "bob@sub.example.org" "delivered to the local recipient only"
assert_eq "$(sink_count)" 1 "nothing else reached the sink"

assert_log "milter-warden\[$MW_PID\]: [A-Za-z]+: $qid: .*from=<sender@mw-test\.example> rcpt=<eve@example\.com> (.* )?action=reject code=554 dsn=5\.7\.1 rule=relay reason=\"<eve@example\.com>: Relay access denied\"" \
	"the refusal is logged under $qid: rcpt, action=reject code=554 dsn=5.7.1 rule=relay and the reply"
assert_no_log "rcpt=<bob@sub\.example\.org>.* action=(reject|tempfail)" "no refusal logged for the local recipient"
assert_log ": $qid: .* nrcpt=1 (.* )?action=accept" "accept line for $qid with nrcpt=1"
maillog=$(cat "$T/log/maillog")
assert_match "$maillog" "milter-reject: RCPT from .*554 5\.7\.1 <eve@example\.com>: Relay access denied; from=<sender@mw-test\.example> to=<eve@example\.com>" \
	"Postfix logged the milter's 554 for eve@example.com"
assert_no_match "$maillog" 'status=(bounced|deferred)' "nothing bounced or deferred"
assert_queue_empty "nothing left in the Postfix queue"
mw_stop
