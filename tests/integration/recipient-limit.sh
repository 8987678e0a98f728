#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: max_recipients is enforced per message through Postfix. With max_recipients = 2,
# every recipient beyond the second gets "452 4.5.3 Too many recipients" (so a well-behaved
# client retries them later, nothing bounces), the message is delivered to the first two
# only, each refusal and the final accept are logged, and the next message on the same
# connection starts counting from zero again.
. "$(dirname "$0")/lib.sh"
it_init
mw_config max_recipients=2
it_start

tok=$(unique_token)
mkmsg "$T/msg/m1" "recipient limit" "$tok" many@mw-test.example a@example.com b@example.com c@example.com d@example.com
session_open
session "MAIL many@mw-test.example"
assert_match "$SESSION_REPLY" '^250 ' "MAIL FROM accepted"
session "RCPT a@example.com"
assert_match "$SESSION_REPLY" '^250 ' "recipient 1 accepted"
session "RCPT b@example.com"
assert_match "$SESSION_REPLY" '^250 ' "recipient 2 accepted"
session "RCPT c@example.com"
assert_match "$SESSION_REPLY" '^452 4\.5\.3 Too many recipients' "recipient 3 gets 452 4.5.3 Too many recipients"
session "RCPT d@example.com"
assert_match "$SESSION_REPLY" '^452 4\.5\.3 ' "recipient 4 gets 452 4.5.3 as well"
session "DATA $T/msg/m1"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "the message is accepted for the first two"
qid=$(queue_id "$SESSION_REPLY")

# Same connection, next message: the count starts again.
tok2=$(unique_token)
mkmsg "$T/msg/m2" "second message, same connection" "$tok2" many@mw-test.example e@example.com f@example.com
session "MAIL many@mw-test.example"
session "RCPT e@example.com"
assert_match "$SESSION_REPLY" '^250 ' "next message: recipient 1 accepted"
session "RCPT f@example.com"
assert_match "$SESSION_REPLY" '^250 ' "next message: recipient 2 accepted (the count is per message)"
session "DATA $T/msg/m2"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "next message accepted"
qid2=$(queue_id "$SESSION_REPLY")
session_close

wait_for_delivery 2
sink_one "$tok" "the first message was delivered once"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "a@example.com,b@example.com" "delivered to the first two recipients only"
sink_one "$tok2" "the second message was delivered once"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "e@example.com,f@example.com" "second message: both recipients"

for r in c d; do
	assert_log "rcpt=<$r@example\.com>.* code=452 dsn=4\.5\.3" "refusal of $r@example.com logged with code=452 dsn=4.5.3"
done
assert_log ": $qid: .* nrcpt=2 (.* )?action=accept" "accept line for the first message, nrcpt=2"
assert_log ": $qid2: .* nrcpt=2 (.* )?action=accept" "accept line for the second message, nrcpt=2"
maillog=$(cat "$T/log/maillog")
assert_match "$maillog" "$qid: milter-reject: RCPT from .*452 4\.5\.3 Too many recipients.*to=<c@example\.com>" \
	"Postfix logged the 452 for c@example.com"
assert_no_match "$maillog" 'status=(bounced|deferred)' "nothing bounced or deferred"
assert_queue_empty "nothing left in the Postfix queue"
mw_stop
