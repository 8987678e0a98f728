#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: when the Redis state store hangs or dies, milter-warden does exactly what
# state_store_on_error says, never holds a session beyond state_store_timeout (250 ms here)
# and uses a restarted Redis again without being restarted itself. The rule is "ratelimit
# messages by client.ip max 2 per 1h" at MAIL; every SMTP session below is timed and must
# finish within 2 s.
#  - Redis up: messages 1 and 2 are delivered, the 3rd gets 451 4.7.1 (the limit works).
#  - state_store_on_error = accept, Redis frozen (SIGSTOP: it accepts and never answers),
#    then killed (SIGKILL): each message is delivered; "state store failed" is logged and
#    the decision line carries state_store_errors=N. Six sessions at once against the hung
#    store all finish in well under 6 x 250 ms: no thread waits behind another's timeout.
#  - Reloaded (SIGHUP) with state_store_on_error = tempfail, Redis still dead: MAIL gets
#    451 4.3.0; the client keeps the message (nothing queued, nothing delivered).
#  - Redis restarted, empty, on the same port: two messages are delivered (with tempfail
#    configured, a 250 means the store answered) and the third gets 451 4.7.1 again.
#  - Redis frozen again: 451 4.3.0 within the time; thawed: the limit answers again
#    (451 4.7.1 for 127.0.0.1, a delivery for a fresh 127.0.0.2), no stale reply read
#    from a connection that timed out.
# The daemon is the same process throughout and stops cleanly.
. "$(dirname "$0")/lib.sh"
it_init
redis_start
rules_write "$T/limits.rules" <<'RULES'
rule rate at mail when ratelimit messages by client.ip max 2 per 1h
    then tempfail 451 4.7.1 "Too many messages, try again in %{retry}"
RULES
rules_check "$T/limits.rules" "the rate-limit rule loads"
mw_config rules="$T/limits.rules" state_store="redis:127.0.0.1:$REDIS_PORT" \
	state_store_timeout=250 state_store_on_error=accept
it_start
pid0=$MW_PID

# msg WHAT [swaks options]: one timed message; sets TX (transcript) and MS (milliseconds).
seq=0
declare -a TOKS=()
msg() {
	local what=$1 t0 tok
	shift
	seq=$((seq + 1))
	tok=$(unique_token)
	TOKS[seq]=$tok
	t0=$(now_ms)
	TX=$(send --to "rcpt$seq@example.com" --h-Subject "$what" --body "$tok" "$@")
	MS=$(($(now_ms) - t0))
	((MS < 2000 * SCALE)) || fail "$what: the SMTP session took ${MS} ms (more than $((2 * SCALE)) s)"
	note "($what: ${MS} ms)"
}
ok_re='^<-  250 2\.0\.0 Ok: queued as '
limit_re='^<\*\* 451 4\.7\.1 Too many messages, try again in [0-9]+ minutes?'
store_re='^<\*\* 451 4\.3\.0 '
delivered=0

msg "limited 1"
assert_match "$TX" "$ok_re" "Redis up: message 1 of 2 accepted"
msg "limited 2"
assert_match "$TX" "$ok_re" "Redis up: message 2 of 2 accepted"
msg "over the limit"
assert_match "$TX" "$limit_re" "Redis up: the 3rd message gets 451 4.7.1"
delivered=2

redis_freeze
mark=$(log_mark "$MW_LOG")
msg "Redis hung, fail open"
assert_match "$TX" "$ok_re" "Redis hung, on_error=accept: the message is accepted within the timeout"
qid=$(queue_id "$TX")
delivered=$((delivered + 1))
wait_for_log "$qid: .*state_store_errors=[1-9]" 5 "$mark" ||
	fail "no decision line with state_store_errors= for $qid"
assert_match "$(log_since "$MW_LOG" "$mark")" 'state store failed: ' "the hung store is logged as 'state store failed'"
assert_match "$(log_since "$MW_LOG" "$mark")" "$qid: .*state_store_errors=[1-9].*action=accept" \
	"the decision line counts state_store_errors and accepts"

# Six sessions at once against the hung store: each libmilter thread waits on its own
# connection, none queues behind another's timeout (six in a row would take 1.5 s).
mark=$(log_mark "$MW_LOG")
for i in 1 2 3 4 5 6; do
	ptok[i]=$(unique_token)
	(
		t0=$(now_ms)
		swaks --server 127.0.0.1 --port "$SMTPD_PORT" --helo "$HELO" --from sender@mw-test.example \
			--to "parallel$i@example.com" --h-Subject "parallel $i" --body "${ptok[i]}" \
			--timeout 30 >"$T/out/parallel.$i.txt" 2>&1
		echo "=== $(($(now_ms) - t0)) ms" >>"$T/out/parallel.$i.txt"
	) &
	ppid[i]=$!
done
for i in 1 2 3 4 5 6; do wait "${ppid[i]}" || true; done
slowest=0
for i in 1 2 3 4 5 6; do
	tx=$(cat "$T/out/parallel.$i.txt")
	assert_match "$tx" "$ok_re" "Redis hung, six sessions at once: session $i accepted"
	ms=$(sed -n 's/^=== \([0-9]*\) ms$/\1/p' <<<"$tx")
	((ms > slowest)) && slowest=$ms
done
note "(six parallel sessions against the hung store: the slowest took ${slowest} ms)"
((slowest < 1300 * SCALE)) || fail "a session took ${slowest} ms with six at once: they wait on each other"
delivered=$((delivered + 6))
assert_eq "$(log_since "$MW_LOG" "$mark" | grep -c 'state store failed: .*timed out after 250 ms')" 6 \
	"each of the six sessions logged its own store timeout"

redis_kill
mark=$(log_mark "$MW_LOG")
msg "Redis dead, fail open"
assert_match "$TX" "$ok_re" "Redis dead, on_error=accept: the message is accepted"
qid=$(queue_id "$TX")
delivered=$((delivered + 1))
wait_for_log "$qid: .*state_store_errors=[1-9].*action=accept" 5 "$mark" ||
	fail "no accept line with state_store_errors= for $qid"
note "ok: the decision line for $qid counts state_store_errors and accepts"
assert_match "$(log_since "$MW_LOG" "$mark")" 'state store failed: ' "the dead store is logged as 'state store failed'"
wait_for_delivery "$delivered"

mw_config rules="$T/limits.rules" state_store="redis:127.0.0.1:$REDIS_PORT" \
	state_store_timeout=250 state_store_on_error=tempfail
mw_reload
assert_match "$RELOAD_LINE" 'reload: ' "reloaded with state_store_on_error = tempfail"
assert_no_match "$RELOAD_LINE" 'fail|error|refus|kept' "the reload was accepted"
msg "Redis dead, fail closed"
refused_tok=${TOKS[seq]}
assert_match "$TX" "$store_re" "Redis dead, on_error=tempfail: MAIL gets 451 4.3.0"
assert_no_match "$TX" 'queued as' "the message was not queued: the client keeps it"

redis_restart
msg "Redis back 1"
assert_match "$TX" "$ok_re" "Redis restarted (empty): message 1 of 2 accepted, the store answers again"
msg "Redis back 2"
assert_match "$TX" "$ok_re" "Redis restarted: message 2 of 2 accepted"
msg "Redis back, over the limit"
assert_match "$TX" "$limit_re" "Redis restarted: the 3rd message gets 451 4.7.1, the limit is enforced again"
delivered=$((delivered + 2))

redis_freeze
msg "Redis hung, fail closed"
assert_match "$TX" "$store_re" "Redis hung, on_error=tempfail: 451 4.3.0 within the timeout"
redis_thaw
msg "Redis thawed, over the limit"
assert_match "$TX" "$limit_re" "Redis thawed: 127.0.0.1 is still over its limit (451 4.7.1)"
msg "Redis thawed, another client" --local-interface 127.0.0.2
assert_match "$TX" "$ok_re" "Redis thawed: a fresh client (127.0.0.2) is accepted"
delivered=$((delivered + 1))

wait_for_delivery "$delivered"
sleep 0.5
assert_eq "$(sink_count)" "$delivered" "the sink holds exactly the $delivered accepted messages"
assert_eq "$(sink_find "$refused_tok" | wc -l)" 0 "nothing of the message refused with 451 4.3.0 was delivered"
assert_queue_empty "nothing is left in the Postfix queue"
assert_eq "$MW_PID" "$pid0" "the same daemon process served the whole test"
assert_no_log 'fatal|crit:|assert' "no fatal error was logged"
mw_stop
