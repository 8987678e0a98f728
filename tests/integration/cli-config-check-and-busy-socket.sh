#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves, for an admin at the command line: -V prints the version; -n accepts the shipped
# configuration (paths adapted) and says "configuration OK"; -n rejects a bad value with
# exit 1 and every error as FILE:LINE:COL; a missing configuration file is an exit 1 that
# names the file, with -n and at startup; and a second instance on a socket that a running
# instance serves exits 1 with a message naming the socket, while the first one keeps its
# socket and keeps passing mail.
. "$(dirname "$0")/lib.sh"
it_init

# run_cli OUTFILE ARGS...: run the binary (bounded) and set CLI_RC; output into OUTFILE.
run_cli() {
	local out=$1
	shift
	CLI_RC=0
	timeout $((20 * SCALE)) "$MW_BIN" "$@" </dev/null >"$out" 2>&1 || CLI_RC=$?
	sed 's/^/  | /' "$out"
	((CLI_RC != 124)) || fail "milter-warden $* did not finish within $((20 * SCALE))s"
}

run_cli "$T/out/version" -V
assert_eq "$CLI_RC" 0 "-V exits 0"
assert_match "$(cat "$T/out/version")" '^milter-warden [0-9]+\.[0-9]+' "-V prints 'milter-warden VERSION'"

shipped_config "$T/shipped.conf"
run_cli "$T/out/check-ok" -n -c "$T/shipped.conf"
assert_eq "$CLI_RC" 0 "-n on the shipped configuration exits 0"
assert_match "$(cat "$T/out/check-ok")" 'configuration OK' "-n says 'configuration OK'"

# Two errors in one file: both reported, each at its own line and at the bad value's column.
# (The shipped settings of both keys are removed first: a key given twice is an error too.)
grep -v -E '^(max_recipients|log_level)[[:space:]]*=' "$T/shipped.conf" >"$T/bad.conf"
echo "max_recipients = lots" >>"$T/bad.conf"
line1=$(wc -l <"$T/bad.conf")
echo "log_level = chatty" >>"$T/bad.conf"
line2=$(wc -l <"$T/bad.conf")
bad_ere=$(ere_quote "$T/bad.conf")
run_cli "$T/out/check-bad" -n -c "$T/bad.conf"
assert_eq "$CLI_RC" 1 "-n on a bad value exits 1"
assert_match "$(cat "$T/out/check-bad")" "^$bad_ere:$line1:18: " "error for max_recipients at $T/bad.conf:$line1:18 (the value)"
assert_match "$(cat "$T/out/check-bad")" "^$bad_ere:$line2:13: " "error for log_level at $T/bad.conf:$line2:13 (all errors in one pass)"
assert_no_match "$(cat "$T/out/check-bad")" 'configuration OK' "-n does not claim OK"

run_cli "$T/out/check-missing" -n -c "$T/no-such.conf"
assert_eq "$CLI_RC" 1 "-n on a missing file exits 1"
assert_match "$(cat "$T/out/check-missing")" "$(ere_quote "$T/no-such.conf")" "the message names the missing file"

run_cli "$T/out/start-missing" -f -c "$T/no-such.conf"
assert_eq "$CLI_RC" 1 "starting with a missing file exits 1"
assert_match "$(cat "$T/out/start-missing")" "$(ere_quote "$T/no-such.conf")" "the message names the missing file"
[[ ! -e $T/run/mw.sock ]] || fail "a failed start left a socket behind"

# A running instance, and a second one pointed at the same socket.
sink_start
mw_start
pf_start
ino_before=$(stat -c %i "$T/run/mw.sock")
cp "$MW_CONF" "$T/second.conf"
sed -i "s|^pidfile = .*|pidfile = $T/run/second.pid|" "$T/second.conf"
mw_spawn "$T/second.conf" "$T/log/second.log"
second=$SPAWNED_PID
MW_EXTRA_PIDS+=("$second")
wait_gone "$second" $((10 * SCALE)) || fail "the second instance is still running 10s later"
rc2=0
wait "$second" || rc2=$?
sed 's/^/  | /' "$T/log/second.log"
assert_eq "$rc2" 1 "the second instance exits 1"
assert_match "$(cat "$T/log/second.log")" "$(ere_quote "$T/run/mw.sock")" "its message names the socket"
assert_match "$(cat "$T/log/second.log")" '[Ii]n use|[Aa]lready|[Rr]unning' "its message says the socket is in use"
alive "$MW_PID" || fail "the first instance died"
[[ -S $T/run/mw.sock ]] || fail "the second instance removed the first one's socket"
assert_eq "$(stat -c %i "$T/run/mw.sock")" "$ino_before" "the first instance's socket is untouched (same inode)"
assert_eq "$(tr -dc 0-9 <"$T/run/mw.pid")" "$MW_PID" "the first instance's pidfile is untouched"

tok=$(unique_token)
tx=$(send --to still@example.com --body "$tok")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "the first instance still passes mail"
qid=$(queue_id "$tx")
wait_for_delivery 1
sink_one "$tok" "delivered"
assert_log "milter-warden\[$MW_PID\]: [A-Za-z]+: $qid: .*action=accept" "logged by the first instance"
mw_stop
