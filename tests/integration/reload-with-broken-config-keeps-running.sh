#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: a SIGHUP with a broken configuration file changes nothing. The daemon keeps
# running, says "reload: failed, keeping the running configuration", names the error as
# FILE:LINE:COL, and goes on passing mail under the configuration it had (max_recipients = 2
# still enforced: it did not fall back to built-in defaults). Fixing the file and sending
# SIGHUP again then works.
. "$(dirname "$0")/lib.sh"
it_init
mw_config max_recipients=2
it_start
pid_before=$MW_PID

mw_config max_recipients=lots
bad_line=$(mw_config_line max_recipients)
mw_reload
alive "$pid_before" || fail "milter-warden exited on SIGHUP with a broken configuration"
note "ok: daemon still running (pid $pid_before)"
assert_match "$RELOAD_LINE" 'reload: failed, keeping the running configuration' "the reload is reported as failed"
conf_ere=$(ere_quote "$MW_CONF")
wait_for_log "$conf_ere:$bad_line:[0-9]+: " 5 "$RELOAD_MARK" || true
assert_match "$(log_since "$MW_LOG" "$RELOAD_MARK")" "$conf_ere:$bad_line:18: " \
	"the error is logged as $MW_CONF:$bad_line:18 (the bad value)"
assert_no_match "$(log_since "$MW_LOG" "$RELOAD_MARK")" 'reload: configuration reloaded' "no success claimed"

# Mail still flows, under the old limit of 2.
tok=$(unique_token)
mkmsg "$T/msg/after" "after a failed reload" "$tok" keep@mw-test.example k1@example.com k2@example.com k3@example.com
session_open
session "MAIL keep@mw-test.example"
session "RCPT k1@example.com"
assert_match "$SESSION_REPLY" '^250 ' "first recipient accepted"
session "RCPT k2@example.com"
assert_match "$SESSION_REPLY" '^250 ' "second recipient accepted"
session "RCPT k3@example.com"
assert_match "$SESSION_REPLY" '^452 4\.5\.3 ' "third recipient gets 452 4.5.3: the running limit of 2 still applies"
session "DATA $T/msg/after"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "message accepted after the failed reload"
qid=$(queue_id "$SESSION_REPLY")
session_close
wait_for_delivery 1
sink_one "$tok" "message delivered after the failed reload"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "k1@example.com,k2@example.com" "delivered to the two recipients within the limit"
assert_accept_logged "$qid" "accept line after the failed reload"

# Fixed file, second SIGHUP: now it takes.
mw_config max_recipients=3
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "a corrected file reloads"
tx=$(send --to f1@example.com,f2@example.com,f3@example.com --body "$(unique_token)")
assert_no_match "$tx" '^<\*\* ' "no recipient refused with max_recipients = 3"
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "three recipients pass with max_recipients = 3"
assert_eq "$MW_PID" "$pid_before" "the same daemon throughout"
mw_stop
