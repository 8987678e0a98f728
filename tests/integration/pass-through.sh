#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: an ordinary message sent through Postfix with milter-warden in smtpd_milters is
# delivered unchanged (headers and body byte for byte, dot-stuffed line included), and the
# daemon logs exactly one accept decision for it, under Postfix's queue id. Also checks what an
# admin sees at startup: the "starting on SOCKET" and "ready" lines, the socket's group and
# mode, and that the daemon no longer runs as root.
. "$(dirname "$0")/lib.sh"
it_init
it_start

log=$(cat "$MW_LOG")
assert_match "$log" "milter-warden\[$MW_PID\]: [A-Za-z]+: milter-warden [^ ]+ starting on unix:$T/run/mw\.sock" \
	"startup line names the version and the socket"
assert_match "$log" "milter-warden\[$MW_PID\]: [A-Za-z]+: ready" "daemon logs 'ready'"
assert_no_match "$log" "milter-warden\[[0-9]+\]: (error|warning):" "no error or warning at startup"
assert_eq "$(stat -c '%a %G' "$T/run/mw.sock")" "660 postfix" "socket mode and group (socket_mode, socket_group)"
mw_uid=$(id -u "$MW_USER")
assert_eq "$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$MW_PID/status")" \
	"$mw_uid $mw_uid $mw_uid $mw_uid" "daemon runs as user $MW_USER (real, effective, saved, fs uid)"
assert_eq "$(tr -dc 0-9 <"$T/run/mw.pid")" "$MW_PID" "pidfile holds the daemon's pid"

tok=$(unique_token)
subject="Quarterly figures, pass-through check $tok"
mkmsg "$T/msg/m1" "$subject" "$tok" sender@mw-test.example rcpt@example.com
tx=$(send --to rcpt@example.com --data "$T/msg/m1")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "Postfix accepts the message"
qid=$(queue_id "$tx")

wait_for_delivery 1
sink_one "$tok" "the message reached the sink once"
assert_eq "$(sink_rcpts "$SINK_FILE")" "rcpt@example.com" "envelope recipient"
delivered=$(cat "$SINK_FILE")
assert_match "$delivered" "^Subject: $subject\$" "Subject header intact"
assert_match "$delivered" '^X-MW-Test: header kept intact$' "custom header intact"
assert_match "$delivered" "^Message-ID: <$tok@mw-test\.example>\$" "Message-ID intact"
if ! diff -u <(body_of "$T/msg/m1") <(body_of "$SINK_FILE"); then
	fail "the delivered body differs from the body sent"
fi
note "ok: body delivered byte for byte, including the line that starts with a dot"

assert_log "milter-warden\[$MW_PID\]: [A-Za-z]+: $qid: client=[^ ]*\[127\.0\.0\.1\] (.* )?helo=$HELO (.* )?from=<sender@mw-test\.example> (.* )?nrcpt=1 (.* )?action=accept" \
	"accept line for $qid: client, helo, from=<address>, nrcpt"
n=$(grep -c -E ": $qid: .*action=" "$MW_LOG" || true)
assert_eq "$n" 1 "exactly one decision line for $qid"
assert_match "$(cat "$T/log/maillog")" "$qid: to=<rcpt@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$SINK_PORT, .*status=sent" \
	"Postfix logged the delivery"
assert_no_match "$(cat "$T/log/maillog")" 'warning:.*[Mm]ilter|milter-reject' "Postfix logged no milter trouble"
mw_stop
