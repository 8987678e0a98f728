#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: the spam policy of the shipped mx.rules, and DNS blocklists, through a real Postfix.
# milter-warden does not trust the client (trusted_networks = 192.0.2.0/24) and takes mail
# for example.org only, so the loopback client is a stranger on the MX listener.
#   1. GTUBE in a base64-encoded text/plain part (not in the raw body) -> 550 5.7.1, nothing
#      delivered.
#   2. A clean message (From, Date, Message-ID) carrying forged X-Spam-Status: Yes,
#      X-Spam-Score and X-Spam-Flag -> delivered with exactly one X-Spam-Status, ours
#      ("No, score=N required=5 tests=..."), one X-Spam-Score and no X-Spam-Flag.
#   3. dnsmasq on loopback lists 127.0.0.1 in bl.test (1.0.0.127.bl.test -> 127.0.0.2); a
#      rules file after mx.rules with a connect rule on dnsbl "bl.test" returns 127.0.0.2:
#      (a) "reject 554 5.7.1" -> refused 554, nothing delivered;
#      (b) "score +6 LISTED" -> delivered, Subject "[SPAM] ...", X-Spam-Flag: YES and
#          X-Spam-Status: Yes with LISTED among the tests.
#   4. dns_servers names a UDP socket that never answers (dnsbl_budget = 1500 ms,
#      dns_timeout = 5 s) -> the message is delivered, the session takes at most
#      budget + 2 s longer than with a working DNS server, and the decision line says
#      dnsbl_noanswer=N.
. "$(dirname "$0")/lib.sh"
it_init
pf_open_relay

# --- local DNS: dnsmasq answering bl.test itself (NXDOMAIN for every name not listed)
command -v /usr/sbin/dnsmasq >/dev/null || fail "/usr/sbin/dnsmasq not found (package dnsmasq-base)"
BL_PORT=$(dns_free_port)
/usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --no-poll \
	--bind-interfaces --listen-address=127.0.0.1 --port="$BL_PORT" --pid-file= --user=nobody \
	--cache-size=0 --log-queries --log-facility="$T/log/dnsmasq.log" \
	--local=/bl.test/ --host-record=1.0.0.127.bl.test,127.0.0.2 \
	</dev/null >>"$T/log/dnsmasq.log" 2>&1 &
BL_PID=$!
MW_EXTRA_PIDS+=("$BL_PID")
for ((i = 0; i < 50; i++)); do
	"$PY" "$HARNESS_PY" is-listening "$BL_PORT" && break
	alive "$BL_PID" || fail "dnsmasq exited during startup"
	sleep 0.1
done
"$PY" "$HARNESS_PY" is-listening "$BL_PORT" || fail "dnsmasq not listening on 127.0.0.1:$BL_PORT"
note "dnsmasq on 127.0.0.1:$BL_PORT, pid $BL_PID"

# --- a DNS "server" that reads every query and answers none
SILENT_PORT=$(dns_free_port)
"$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    s.recvfrom(4096)
    print("query", flush=True)
' "$SILENT_PORT" >"$T/log/silent-dns.log" 2>&1 </dev/null &
SILENT_PID=$!
MW_EXTRA_PIDS+=("$SILENT_PID")
for ((i = 0; i < 50; i++)); do
	grep -q ready "$T/log/silent-dns.log" && break
	alive "$SILENT_PID" || fail "the silent DNS socket exited"
	sleep 0.1
done
grep -q ready "$T/log/silent-dns.log" || fail "the silent DNS socket did not start"

MX="$MW_TOP/rules/mx.rules"
BL=$T/bl.rules
mw_config trusted_networks=192.0.2.0/24 local_domains=example.org rules="$MX" \
	dns_servers="127.0.0.1:$BL_PORT" dns_timeout=2
it_start

delivered=0
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# --- 1. GTUBE, base64-encoded in a text part
GTUBE='XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'
tok1=$(unique_token)
{
	printf 'From: <someone@example.net>\nTo: <alice@example.org>\nSubject: gtube %s\n' "$tok1"
	printf 'Date: %s\nMessage-ID: <%s@example.net>\n' "$(date -R)" "$tok1"
	printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n\n'
	printf 'Preamble.\n--b1\nContent-Type: text/plain; charset=us-ascii\n\nToken %s\n' "$tok1"
	printf -- '--b1\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: base64\n\n'
	printf 'This message carries the test string:\n%s\nEnd.\n' "$GTUBE" | base64 -w 60
	printf -- '--b1--\n'
} >"$T/msg/gtube.eml"
grep -qF 'GTUBE-STANDARD' "$T/msg/gtube.eml" && fail "harness: GTUBE is visible in the raw message"
tx=$(send --from someone@example.net --to alice@example.org --data "@$T/msg/gtube.eml")
assert_match "$tx" '^<\*\* +550 5\.7\.1 ' "1: GTUBE in a base64 part is refused with 550 5.7.1"
assert_no_match "$tx" 'queued as' "1: Postfix did not queue the GTUBE message"

# --- 2. a clean message with forged spam headers
tok2=$(unique_token)
mkmsg "$T/msg/clean.eml" "clean" "$tok2" someone@example.net alice@example.org
sed -i '0,/^X-MW-Test: /s//X-Spam-Status: Yes, score=99.0 required=5 tests=FORGED\nX-Spam-Score: 99.0\nX-Spam-Flag: YES\n&/' \
	"$T/msg/clean.eml"
assert_eq "$(grep -c '^X-Spam-' "$T/msg/clean.eml")" 3 "harness: the clean message carries 3 forged X-Spam-* fields"
t0=$(now_ms)
tx=$(send --from someone@example.net --to alice@example.org --data "@$T/msg/clean.eml")
t_normal=$(($(now_ms) - t0))
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "2: the clean message is accepted"
delivered=$((delivered + 1))
wait_for_delivery "$delivered"
sink_one "$tok2" "2: the clean message was delivered"
status=$(sink_header "$SINK_FILE" X-Spam-Status)
assert_eq "$(grep -c . <<<"$status")" 1 "2: exactly one X-Spam-Status in the delivered copy"
assert_match "$status" '^X-Spam-Status: No, score=[0-9.]+ required=5 tests=' "2: it is ours: No, score=N required=5 tests=..."
assert_no_match "$status" 'FORGED' "2: the forged X-Spam-Status is gone"
assert_eq "$(sink_header "$SINK_FILE" X-Spam-Score | grep -c .)" 1 "2: exactly one X-Spam-Score"
assert_no_match "$(sink_header "$SINK_FILE" X-Spam-Score)" '99' "2: the forged X-Spam-Score is gone"
assert_eq "$(sink_header "$SINK_FILE" X-Spam-Flag | grep -c .)" 0 "2: the forged X-Spam-Flag is gone"
assert_eq "$(sink_header "$SINK_FILE" Subject)" "Subject: clean" "2: Subject not tagged"
assert_eq "$(sink_find "$tok1")" "" "1: the GTUBE message was not delivered"

# --- 3a. client listed in bl.test: rejected at connect
rules_write "$BL" <<'RULES'
rule bl at connect when dnsbl "bl.test" returns 127.0.0.2 then reject 554 5.7.1 "listed"
RULES
rules_check "$BL" "3a: the blocklist reject rule loads"
mw_config trusted_networks=192.0.2.0/24 local_domains=example.org rules="$MX, $BL" \
	dns_servers="127.0.0.1:$BL_PORT" dns_timeout=2
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "3a: reloaded with bl.rules"
tok3=$(unique_token)
mkmsg "$T/msg/listed.eml" "listed" "$tok3" someone@example.net alice@example.org
tx=$(send --from someone@example.net --to alice@example.org --data "@$T/msg/listed.eml")
# Postfix answers a milter's refusal at connect with its own 554 greeting and logs the
# milter's reply.
assert_match "$tx" '^<\*\* +554 ' "3a: a listed client is refused with 554 at the greeting"
assert_match "$(cat "$T/log/maillog")" 'milter-reject: CONNECT from [^ ]+: 554 5\.7\.1 listed;' \
	"3a: Postfix logs the milter's 554 5.7.1 listed"
assert_log 'NOQUEUE: .* rule=bl reason="listed"' "3a: the milter logs the refusal by rule bl"
assert_no_match "$tx" 'queued as' "3a: Postfix did not queue the message"
assert_match "$(cat "$T/log/dnsmasq.log")" 'query\[A\] 1\.0\.0\.127\.bl\.test' "3a: the milter asked dnsmasq for 1.0.0.127.bl.test"

# --- 3b. the same listing as a score
rules_write "$BL" <<'RULES'
rule bl at connect when dnsbl "bl.test" returns 127.0.0.2 then score +6 LISTED
RULES
rules_check "$BL" "3b: the blocklist score rule loads"
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "3b: reloaded"
tok4=$(unique_token)
mkmsg "$T/msg/scored.eml" "scored" "$tok4" someone@example.net alice@example.org
t0=$(now_ms)
tx=$(send --from someone@example.net --to alice@example.org --data "@$T/msg/scored.eml")
t_dns=$(($(now_ms) - t0))
((t_dns > t_normal)) && t_normal=$t_dns
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "3b: the listed client's message is accepted"
delivered=$((delivered + 1))
wait_for_delivery "$delivered"
sink_one "$tok4" "3b: delivered"
assert_eq "$(sink_header "$SINK_FILE" Subject)" "Subject: [SPAM] scored" "3b: Subject tagged [SPAM]"
assert_eq "$(sink_header "$SINK_FILE" X-Spam-Flag)" "X-Spam-Flag: YES" "3b: X-Spam-Flag: YES"
status=$(sink_header "$SINK_FILE" X-Spam-Status)
assert_eq "$(grep -c . <<<"$status")" 1 "3b: exactly one X-Spam-Status"
assert_match "$status" '^X-Spam-Status: Yes, score=[0-9.]+ required=5 tests=.*LISTED' "3b: X-Spam-Status: Yes, tests with LISTED"
assert_eq "$(sink_find "$tok3")" "" "3a: the refused message was not delivered"

# --- 4. a DNS server that never answers
mw_config trusted_networks=192.0.2.0/24 local_domains=example.org rules="$MX, $BL" \
	dns_servers="127.0.0.1:$SILENT_PORT" dns_timeout=5 dnsbl_budget=1500
mw_reload
assert_match "$RELOAD_LINE" 'reload: configuration reloaded' "4: reloaded with a silent DNS server"
tok5=$(unique_token)
mkmsg "$T/msg/silent.eml" "silent" "$tok5" someone@example.net alice@example.org
t0=$(now_ms)
tx=$(send --from someone@example.net --to alice@example.org --data "@$T/msg/silent.eml")
t_silent=$(($(now_ms) - t0))
note "session times: normal ${t_normal} ms, DNS silent ${t_silent} ms"
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "4: accepted although DNS does not answer"
qid=$(queue_id "$tx")
((t_silent <= t_normal + 1500 + 2000)) ||
	fail "4: the session took ${t_silent} ms, more than budget + 2 s over the normal ${t_normal} ms"
note "ok: 4: the silent DNS server delayed the session by at most budget + 2 s"
delivered=$((delivered + 1))
wait_for_delivery "$delivered"
sink_one "$tok5" "4: delivered, not lost"
assert_match "$(sink_header "$SINK_FILE" X-Spam-Status)" '^X-Spam-Status: No, ' "4: not listed when unanswered"
assert_log ": $qid: .*dnsbl_noanswer=[1-9]" "4: the decision line counts dnsbl_noanswer"
assert_match "$(cat "$T/log/silent-dns.log")" '^query$' "4: the lookup went to the silent server"

assert_eq "$(sink_count)" "$delivered" "the sink holds the $delivered accepted messages, nothing else"
assert_queue_empty "nothing left in the Postfix queue"
mw_stop
