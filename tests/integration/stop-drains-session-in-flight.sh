#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: SIGTERM is a graceful stop. A session in flight (MAIL and RCPT already answered)
# when the signal arrives is allowed to finish: its DATA is accepted, the message is logged and
# delivered. Meanwhile the listener is closed, so a new connection is tempfailed by Postfix
# instead of being served. Once the session ends, the daemon exits 0 well within
# shutdown_timeout.
. "$(dirname "$0")/lib.sh"
it_init
mw_config shutdown_timeout=20
it_start

tok=$(unique_token)
mkmsg "$T/msg/inflight" "in flight during SIGTERM" "$tok" drain@mw-test.example inflight@example.com

session_open
session "MAIL drain@mw-test.example"
assert_match "$SESSION_REPLY" '^250 ' "MAIL FROM accepted before the stop"
session "RCPT inflight@example.com"
assert_match "$SESSION_REPLY" '^250 ' "RCPT accepted before the stop"

stop_mark=$(log_mark "$MW_LOG")
mw_signal TERM
sleep 1
alive "$MW_PID" || fail "milter-warden exited at SIGTERM although a session was in flight"
note "ok: daemon still running 1s after SIGTERM (draining)"

session "DATA $T/msg/inflight"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "DATA of the in-flight session accepted after SIGTERM"
qid=$(queue_id "$SESSION_REPLY")

# A new client meanwhile must not be served by a daemon that is going away: the socket
# path is removed at once (the listener itself closes only when the drain is over), so
# Postfix's connect fails at once instead of hanging until a handshake timeout, and it
# answers 4xx.
for ((i = 0; i < 50 * SCALE; i++)); do
	[[ -S $T/run/mw.sock ]] || break
	sleep 0.1
done
if [[ -S $T/run/mw.sock ]]; then
	fail "the milter socket path still exists $((5 * SCALE))s after SIGTERM"
fi
note "ok: milter socket removed after SIGTERM"
maillog_mark=$(log_mark "$T/log/maillog")
late=$(unique_token)
tx=$(send --to late@example.com --body "$late")
assert_match "$tx" '^<\*\* 4[0-9][0-9] ' "a new session during the drain gets 4xx"
assert_match "$(log_since "$T/log/maillog" "$maillog_mark")" \
	'warning: connect to Milter service unix:.*: (Connection refused|No such file or directory)' \
	"Postfix could not connect to the milter during the drain (listener closed)"

session_close

mw_wait_exit 10
assert_eq "$MW_STATUS" 0 "exit status after draining"
assert_match "$(log_since "$MW_LOG" "$stop_mark")" ": $qid: .*action=accept" \
	"the in-flight message was logged after the signal"

wait_for_delivery 1
sink_one "$tok" "the in-flight message was delivered"
assert_eq "$(sink_rcpts "$SINK_FILE")" "inflight@example.com" "its recipient"
assert_eq "$(sink_find "$late" | wc -l)" 0 "the message refused during the drain was not delivered"
assert_queue_empty "nothing left in the Postfix queue"
