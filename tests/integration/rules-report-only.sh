#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: a rule marked report-only is evaluated and logged but takes no effect. With a
# report-only relay reject at rcpt and a report-only eom rule that would add a header and score,
# a message to a non-local recipient is accepted (250 for RCPT and DATA) and delivered unchanged:
# no added header, the body byte for byte. The log has one "report-only: would ..." line per
# rule, naming it, with its actions as written; the accept line carries neither rule in rules=
# nor their score.
. "$(dirname "$0")/lib.sh"
it_init
rules_write "$T/trial.rules" <<'RULES'
list local domain { mw-test.example }
rule trial-relay at rcpt report-only when not rcpt.domain in local
    then reject 554 5.7.1 "<%{rcpt}>: Relay access denied"
rule trial-tag at eom report-only when body =~ /^Token: /m
    then score +5 "trial", add-header "X-Trial" "score %{score}"
RULES
rules_check "$T/trial.rules" "the report-only rules load"
mw_config rules="$T/trial.rules"
it_start

tok=$(unique_token)
mkmsg "$T/msg/m1" "report-only trial" "$tok" sender@mw-test.example eve@example.com
tx=$(send --to eve@example.com --data "$T/msg/m1")
assert_match "$tx" '^<-  250 2\.1\.5 ' "the non-local recipient is accepted (the reject is report-only)"
assert_no_match "$tx" '^<\*\* ' "no SMTP command refused"
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "Postfix accepts the message"
qid=$(queue_id "$tx")

wait_for_delivery 1
sink_one "$tok" "the message was delivered"
assert_eq "$(sink_rcpts "$SINK_FILE")" "eve@example.com" "delivered to the recipient the rule would have refused"
assert_eq "$(sink_header "$SINK_FILE" X-Trial | wc -l)" 0 "the report-only add-header was not made"
if ! diff -u <(body_of "$T/msg/m1") <(body_of "$SINK_FILE"); then
	fail "the delivered body differs from the body sent"
fi
note "ok: body delivered byte for byte"

assert_log "milter-warden\[$MW_PID\]: info: (NOQUEUE|$qid): session=[0-9a-f]+ rcpt=<[^>]+> rule=trial-relay report-only: would reject 554 5\.7\.1 \"<%\{rcpt\}>: Relay access denied\"\$" \
	"report-only line for trial-relay, with the action as written"
assert_log "milter-warden\[$MW_PID\]: info: $qid: session=[0-9a-f]+ rule=trial-tag report-only: would score \+5 \"?trial\"?, add-header \"X-Trial\" \"score %\{score\}\"\$" \
	"report-only line for trial-tag, with the actions as written"
assert_eq "$(grep -c 'report-only' "$MW_LOG")" 2 "exactly two report-only lines"
assert_log ": $qid: .*from=<sender@mw-test\.example> nrcpt=1 (.* )?action=accept" "accept line for $qid"
accept=$(grep -E ": $qid: .*action=accept" "$MW_LOG")
assert_no_match "$accept" 'rules=[^ ]*trial|score=5|labels=' "the accept line names no report-only rule and has no score from one"
assert_no_log 'action=(reject|tempfail)' "no refusal logged"
assert_queue_empty "nothing left in the Postfix queue"
mw_stop
