#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: with milter_default_action = tempfail, a stopped milter-warden costs no mail. A
# message accepted before the stop is delivered; while the daemon is down Postfix answers
# 4xx, so the sender keeps the message (nothing of it is delivered or queued); once the
# daemon is started again mail passes and is logged again; the queue ends empty.
. "$(dirname "$0")/lib.sh"
it_init
it_start

before=$(unique_token)
tx=$(send --to before@example.com --h-Subject "sent before the stop" --body "$before")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "message before the stop accepted"
qid_before=$(queue_id "$tx")
wait_for_delivery 1
sink_one "$before" "message accepted before the stop was delivered"
assert_accept_logged "$qid_before" "accept line for the message before the stop"

mw_stop

during=$(unique_token)
tx=$(send --to during@example.com --h-Subject "sent while the milter is down" --body "$during")
assert_match "$tx" '^<\*\* 4[0-9][0-9] 4\.[0-9]+\.[0-9]+ ' "Postfix answers 4xx while the milter is down"
assert_match "$tx" '^<\*\* 451 4\.7\.1 ' "the answer is 451 4.7.1 (milter_default_action = tempfail)"
assert_no_match "$tx" 'queued as' "the message was not queued"
assert_match "$(cat "$T/log/maillog")" 'warning: connect to Milter service unix:.*mw\.sock' \
	"Postfix logged that it could not reach the milter"

# Give Postfix time to (wrongly) deliver anything it took in, then check nothing arrived.
sleep 1
assert_eq "$(sink_find "$during" | wc -l)" 0 "nothing of the tempfailed message reached the sink"
assert_eq "$(sink_count)" 1 "the sink holds only the message from before the stop"
assert_queue_empty "nothing sits in the Postfix queue while the milter is down"

mw_start
after=$(unique_token)
tx=$(send --to after@example.com --h-Subject "sent after the restart" --body "$after")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "message after the restart accepted"
qid_after=$(queue_id "$tx")
wait_for_delivery 2
sink_one "$after" "message after the restart delivered"
assert_accept_logged "$qid_after" "accept line from the restarted daemon"
assert_log "milter-warden\[$MW_PID\]: [A-Za-z]+: $qid_after: " "the restarted daemon (pid $MW_PID) logged it"
assert_eq "$(sink_find "$during" | wc -l)" 0 "the tempfailed message still never arrived (the client owns the retry)"
assert_queue_empty "nothing lost in the Postfix queue"
mw_stop
