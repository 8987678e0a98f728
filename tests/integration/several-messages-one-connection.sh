#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: message state is per message, not per connection. Three messages on one SMTP
# connection (so one milter connection), with an abandoned transaction (RSET) in between, are
# all delivered to exactly their own recipients, and each gets its own accept line with its
# own queue id and recipient count: nothing leaks from one message into the next.
. "$(dirname "$0")/lib.sh"
it_init
it_start

declare -a tok qid
for i in 1 2 3; do
	tok[i]=$(unique_token)
done
mkmsg "$T/msg/m1" "first of three" "${tok[1]}" one@mw-test.example a1@example.com
mkmsg "$T/msg/m2" "second of three" "${tok[2]}" two@mw-test.example b1@example.com b2@example.com
mkmsg "$T/msg/m3" "third of three" "${tok[3]}" three@mw-test.example c1@example.com

session_open
assert_match "$SESSION_REPLY" '^250 ' "EHLO accepted"

session "MAIL one@mw-test.example"
assert_match "$SESSION_REPLY" '^250 ' "MAIL FROM for message 1"
session "RCPT a1@example.com"
assert_match "$SESSION_REPLY" '^250 ' "RCPT for message 1"
session "DATA $T/msg/m1"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "message 1 queued"
qid[1]=$(queue_id "$SESSION_REPLY")

session "MAIL two@mw-test.example"
assert_match "$SESSION_REPLY" '^250 ' "MAIL FROM for message 2"
session "RCPT b1@example.com"
session "RCPT b2@example.com"
assert_match "$SESSION_REPLY" '^250 ' "second RCPT for message 2"
session "DATA $T/msg/m2"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "message 2 queued"
qid[2]=$(queue_id "$SESSION_REPLY")

# An abandoned transaction: its sender and recipients must not reach message 3.
session "MAIL ghost@mw-test.example"
session "RCPT ghost1@example.com"
session "RCPT ghost2@example.com"
session "RSET"
assert_match "$SESSION_REPLY" '^250 ' "RSET accepted"

session "MAIL three@mw-test.example"
assert_match "$SESSION_REPLY" '^250 ' "MAIL FROM for message 3"
session "RCPT c1@example.com"
session "DATA $T/msg/m3"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "message 3 queued"
qid[3]=$(queue_id "$SESSION_REPLY")
session_close

[[ ${qid[1]} != "${qid[2]}" && ${qid[2]} != "${qid[3]}" && ${qid[1]} != "${qid[3]}" ]] ||
	fail "Postfix gave the same queue id twice: ${qid[*]}"

wait_for_delivery 3
sink_one "${tok[1]}" "message 1 delivered once"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "a1@example.com" "message 1 recipients"
sink_one "${tok[2]}" "message 2 delivered once"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "b1@example.com,b2@example.com" "message 2 recipients"
sink_one "${tok[3]}" "message 3 delivered once"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "c1@example.com" "message 3 recipients"
assert_eq "$(sink_find ghost | wc -l)" 0 "nothing of the abandoned transaction was delivered"

tag="milter-warden\[$MW_PID\]: [A-Za-z]+:"
assert_log "$tag ${qid[1]}: .*from=<one@mw-test\.example> (.* )?nrcpt=1 (.* )?action=accept" "accept line for message 1"
assert_log "$tag ${qid[2]}: .*from=<two@mw-test\.example> (.* )?nrcpt=2 (.* )?action=accept" "accept line for message 2"
assert_log "$tag ${qid[3]}: .*from=<three@mw-test\.example> (.* )?nrcpt=1 (.* )?action=accept" "accept line for message 3 (RSET recipients not counted)"
assert_eq "$(grep -c -E "$tag [0-9A-Za-z]+: .* nrcpt=[0-9]+.* action=accept" "$MW_LOG")" 3 \
	"three end-of-message accept lines in all"
assert_no_log "$tag [0-9A-Za-z]+: .*from=<ghost@.* nrcpt=" "no end-of-message decision for the abandoned transaction"
assert_queue_empty "nothing left in the Postfix queue"
mw_stop
