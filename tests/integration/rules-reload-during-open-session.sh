#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: SIGHUP reloads the rules files, and a session in flight keeps the ruleset it started
# with. Ruleset one refuses nobody (it only logs each recipient); a session opened under it has
# closed@example.org accepted, then the file is rewritten (ruleset two refuses every local part
# "closed" with 550 5.1.1) and the daemon reloaded: the open session may still add
# closed@example.net, still judged by ruleset one, and its message is delivered to both. A new
# session gets ruleset two: "550 5.1.1 <closed@example.org>: mailbox closed", its message goes to
# the other recipient only. Then a rules file with a syntax error: the reload fails with
# FILE:LINE:COL, "reload: failed, keeping the running configuration", and ruleset two still
# decides (the broken file's rule that would let "closed" in is not used).
. "$(dirname "$0")/lib.sh"
it_init
rules="$T/policy.rules"
rules_write "$rules" <<'RULES'
# Ruleset one: everyone is welcome.
rule trace-one at rcpt then log "ruleset one: %{rcpt}"
RULES
mw_config rules="$rules"
it_start
pid_before=$MW_PID

tok=$(unique_token)
mkmsg "$T/msg/open" "open across a rules reload" "$tok" open@mw-test.example closed@example.org closed@example.net
session_open
session "MAIL open@mw-test.example"
assert_match "$SESSION_REPLY" '^250 ' "MAIL FROM in the open session"
session "RCPT closed@example.org"
assert_match "$SESSION_REPLY" '^250 ' "closed@example.org accepted under ruleset one"

rules_write "$rules" <<'RULES'
# Ruleset two: mailboxes called "closed" are gone.
rule trace-two at rcpt then log "ruleset two: %{rcpt}"
rule closed-mailbox at rcpt when rcpt.local == "closed"
    then reject 550 5.1.1 "<%{rcpt}>: mailbox closed"
RULES
rules_check "$rules" "ruleset two loads"
mw_reload
alive "$pid_before" || fail "milter-warden exited on SIGHUP"
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "the reload succeeded"
assert_no_match "$(log_since "$MW_LOG" "$RELOAD_MARK")" 'milter-warden\[[0-9]+\]: (error|warning):' \
	"no error or warning during the reload"

session "RCPT closed@example.net"
assert_match "$SESSION_REPLY" '^250 ' "a recipient added after the reload is still judged by the session's ruleset (one)"
session "DATA $T/msg/open"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "the open session's message is accepted"
qid_open=$(queue_id "$SESSION_REPLY")
session_close

wait_for_delivery 1
sink_one "$tok" "the open session's message was delivered"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "closed@example.net,closed@example.org" \
	"delivered to both recipients"
assert_log ": $qid_open: rule=trace-one log: ruleset one: closed@example\.net" \
	"the recipient added after the reload was evaluated by ruleset one"
assert_no_log "ruleset two: closed@example\.(org|net)\$" "ruleset two never saw the open session"
assert_log ": $qid_open: .* nrcpt=2 (.* )?action=accept" "accept line with nrcpt=2"

# A new session: ruleset two applies.
tok2=$(unique_token)
mkmsg "$T/msg/new" "after the rules reload" "$tok2" new@mw-test.example closed@example.org open@example.org
session_open
session "MAIL new@mw-test.example"
session "RCPT closed@example.org"
assert_eq "$SESSION_REPLY" "550 5.1.1 <closed@example.org>: mailbox closed" "new session: closed@example.org refused by the new rule"
session "RCPT open@example.org"
assert_match "$SESSION_REPLY" '^250 ' "new session: another recipient accepted"
session "DATA $T/msg/new"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "new session: message accepted for the other recipient"
qid_new=$(queue_id "$SESSION_REPLY")
session_close
wait_for_delivery 2
sink_one "$tok2" "the new session's message was delivered"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "open@example.org" "delivered to the other recipient only"
assert_log "rcpt=<closed@example\.org> (.* )?action=reject code=550 dsn=5\.1\.1 rule=closed-mailbox " \
	"the refusal is logged with rule=closed-mailbox"
assert_log ": (NOQUEUE|$qid_new): rule=trace-two log: ruleset two: open@example\.org$" "the new session ran ruleset two"

# A broken rules file: the reload fails and ruleset two stays.
rules_write "$rules" <<'RULES'
# Ruleset three, broken on purpose: the parenthesis is never closed.
rule trace-three at rcpt then log "ruleset three: %{rcpt}"
rule let-closed-in at rcpt when (rcpt.local == "closed" then accept
RULES
mw_reload
alive "$pid_before" || fail "milter-warden exited on SIGHUP with a broken rules file"
assert_match "$RELOAD_LINE" 'reload: failed, keeping the running configuration' "the reload is reported as failed"
rules_ere=$(ere_quote "$rules")
# The column of "then", where ")" was expected.
col=$(awk 'NR == 3 { print index($0, " then accept") + 1 }' "$rules")
wait_for_log "$rules_ere:3:[0-9]+: " 5 "$RELOAD_MARK" || true
assert_match "$(log_since "$MW_LOG" "$RELOAD_MARK")" "reload: $rules_ere:3:$col: expected \"\)\", found then" \
	"the error is logged as $rules:3:$col (where ')' was expected)"
assert_no_match "$(log_since "$MW_LOG" "$RELOAD_MARK")" 'reload: configuration reloaded' "no success claimed"

tok3=$(unique_token)
mkmsg "$T/msg/after" "after a failed rules reload" "$tok3" after@mw-test.example closed@example.org open@example.org
session_open
session "MAIL after@mw-test.example"
session "RCPT closed@example.org"
assert_eq "$SESSION_REPLY" "550 5.1.1 <closed@example.org>: mailbox closed" "after the failed reload, ruleset two still refuses closed@example.org"
session "RCPT open@example.org"
assert_match "$SESSION_REPLY" '^250 ' "and accepts the other recipient"
session "DATA $T/msg/after"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "message accepted after the failed reload"
session_close
wait_for_delivery 3
sink_one "$tok3" "the message sent after the failed reload was delivered"
assert_eq "$(sink_rcpts "$SINK_FILE" | paste -sd,)" "open@example.org" "delivered to the other recipient only"
assert_no_log "ruleset three" "the broken ruleset never ran"
assert_eq "$MW_PID" "$pid_before" "the same daemon throughout"
assert_queue_empty "nothing left in the Postfix queue"
mw_stop
