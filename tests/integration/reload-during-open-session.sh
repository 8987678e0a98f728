#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: SIGHUP reloads the configuration without stopping the daemon or disturbing a
# session in flight. The open session keeps the configuration it started with (a limit
# lowered by the reload does not cut off its recipients, even one added after the reload), its
# message is delivered to every recipient; the next session gets the new limit: 452 4.5.3 for
# the recipient beyond it, and its message goes to the recipient within it only.
. "$(dirname "$0")/lib.sh"
it_init
mw_config max_recipients=5
it_start

tok=$(unique_token)
mkmsg "$T/msg/open" "open across a reload" "$tok" open@mw-test.example r1@example.com r2@example.com r3@example.com
session_open
session "MAIL open@mw-test.example"
assert_match "$SESSION_REPLY" '^250 ' "MAIL FROM in the open session"
session "RCPT r1@example.com"
assert_match "$SESSION_REPLY" '^250 ' "first recipient accepted"
session "RCPT r2@example.com"
assert_match "$SESSION_REPLY" '^250 ' "second recipient accepted"

pid_before=$MW_PID
mw_config max_recipients=1
mw_reload
alive "$pid_before" || fail "milter-warden exited on SIGHUP"
note "ok: daemon still running after SIGHUP (pid $pid_before)"
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "the reload succeeded"
assert_no_match "$(log_since "$MW_LOG" "$RELOAD_MARK")" 'milter-warden\[[0-9]+\]: (error|warning):' \
	"no error or warning during the reload"

session "RCPT r3@example.com"
assert_match "$SESSION_REPLY" '^250 ' "a recipient added after the reload is still judged by the session's configuration (5)"
session "DATA $T/msg/open"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "the open session's message is accepted"
qid_open=$(queue_id "$SESSION_REPLY")
session_close

wait_for_delivery 1
sink_one "$tok" "the open session's message was delivered"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "r1@example.com,r2@example.com,r3@example.com" \
	"delivered to all three recipients"
assert_log ": $qid_open: .* nrcpt=3 (.* )?action=accept" "accept line with nrcpt=3"

# A new session: the new limit (1) applies.
tok2=$(unique_token)
mkmsg "$T/msg/new" "after the reload" "$tok2" new@mw-test.example n1@example.com n2@example.com
session_open
session "MAIL new@mw-test.example"
session "RCPT n1@example.com"
assert_match "$SESSION_REPLY" '^250 ' "new session: first recipient accepted"
session "RCPT n2@example.com"
assert_match "$SESSION_REPLY" '^452 4\.5\.3 ' "new session: second recipient gets 452 4.5.3"
session "DATA $T/msg/new"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "new session: message accepted for the first recipient"
qid_new=$(queue_id "$SESSION_REPLY")
session_close

wait_for_delivery 2
sink_one "$tok2" "the new session's message was delivered"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "n1@example.com" "delivered to the first recipient only"
assert_log 'n2@example\.com.*452|452.*n2@example\.com' "the refused recipient is logged with 452"
assert_log ": $qid_new: .* nrcpt=1 (.* )?action=accept" "accept line with nrcpt=1"
assert_match "$(cat "$T/log/maillog")" 'milter-reject: RCPT from .*452 4\.5\.3 .*to=<n2@example\.com>' \
	"Postfix logged the milter's 452 for the second recipient"
assert_eq "$MW_PID" "$pid_before" "the same daemon served both sessions"
assert_queue_empty "nothing left in the Postfix queue"
mw_stop
