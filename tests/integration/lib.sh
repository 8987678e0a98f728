# shellcheck shell=bash disable=SC2119,SC2120
# tests/integration/lib.sh — end-to-end harness for milter-warden behind a real Postfix.
#
# A test script sources this file, calls it_init, then starts what it needs:
#
#     . "$(dirname "$0")/lib.sh"
#     it_init
#     mw_config max_recipients=2      # write the daemon's configuration
#     it_start                        # sink, then milter-warden, then Postfix
#     ...send mail, assert...
#
# Everything lives in one temporary directory ($T, mktemp -d under /tmp):
#   $T/pf/            private Postfix configuration: main.cf, master.cf, transport
#   $T/spool/, $T/data/  its queue_directory and data_directory (outside $T/pf: Postfix wants
#                     everything under its configuration directory owned by root)
#   $T/sink/msg.*     every message Postfix delivered (smtp-sink -d), one file each
#   $T/run/           milter-warden socket and pidfile (owned by the milter-warden user)
#   $T/mw.conf        the daemon's configuration ($MW_CONF)
#   $T/log/           mw.log (daemon stderr), maillog (Postfix), sink.log, valgrind.*.log
#   $T/msg/, $T/out/  messages the test sends and the SMTP transcripts
# The system Postfix instance is never touched. An EXIT trap stops every process the harness
# started (Postfix master, milter-warden, smtp-sink, SMTP sessions) however the test ends;
# the directory is removed after a pass and kept (path printed) after a failure or with
# MW_KEEP=1.
#
# Environment:
#   MW_BIN       daemon binary (default: $top/milter/milter-warden)
#   MW_VALGRIND  1 = run the daemon under valgrind; any valgrind error fails the test
#   MW_KEEP      1 = keep $T even when the test passes
#
# Needs root (the Postfix master runs as root; milter-warden starts as root and drops to
# the milter-warden user, which it_init creates when missing).

set -euo pipefail

MW_TOP=${MW_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
MW_BIN=${MW_BIN:-$MW_TOP/milter/milter-warden}
MW_VALGRIND=${MW_VALGRIND:-0}
MW_KEEP=${MW_KEEP:-0}
MW_USER=milter-warden
HARNESS_PY="$MW_TOP/tests/integration/harness.py"
# Debian's python3, not whatever a version manager put first on PATH.
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)
HELO=client.mw-test.example
# Waits are bounded; valgrind makes the daemon several times slower.
SCALE=1
[[ $MW_VALGRIND == 1 ]] && SCALE=5

T=
MW_PID=
MW_CONF=
MW_LOG=
SINK_PID=
PF_DIR=
PF_STARTED=0
SMTPD_PORT=
SINK_PORT=
CHAT_PID=
CHAT_IN=
CHAT_OUT=
SESSION_REPLY=
SEND_SEQ=0
declare -a MW_EXTRA_PIDS=()

# ---------------------------------------------------------------- reporting and assertions

note() { printf '  %s\n' "$*"; }

# Print the end of every log that explains a failure.
it_diagnostics() {
	local f
	[[ -n $T && -d $T ]] || return 0
	for f in "$MW_LOG" "$T/log/maillog" "$T/log/sink.log"; do
		[[ -n $f && -s $f ]] || continue
		printf -- '--- last lines of %s\n' "$f"
		tail -n 25 "$f" | sed 's/^/  | /'
	done
	if [[ -n $PF_DIR && $PF_STARTED == 1 ]]; then
		printf -- '--- postqueue -p\n'
		postqueue -c "$PF_DIR" -p 2>&1 | sed 's/^/  | /' || true
	fi
}

# fail MESSAGE: report, show the logs, and end the test (the EXIT trap cleans up).
# Never call it inside $(...): it would only end the subshell.
fail() {
	{
		printf 'FAIL: %s\n' "$*"
		it_diagnostics
	} >&2
	exit 1
}

# assert_match TEXT ERE WHAT: TEXT has a line matching ERE.
assert_match() {
	if ! grep -Eq -- "$2" <<<"$1"; then
		printf -- '--- text searched:\n%s\n' "$1" | sed 's/^/  > /' >&2
		fail "$3: expected a line matching /$2/"
	fi
	note "ok: $3"
}

# assert_no_match TEXT ERE WHAT: no line of TEXT matches ERE.
assert_no_match() {
	if grep -Eq -- "$2" <<<"$1"; then
		{
			printf -- '--- offending lines:\n'
			grep -E -- "$2" <<<"$1" | sed 's/^/  > /'
		} >&2
		fail "$3: expected no line matching /$2/"
	fi
	note "ok: $3"
}

# assert_eq GOT WANT WHAT
assert_eq() {
	[[ "$1" == "$2" ]] || fail "$3: expected '$2', got '$1'"
	note "ok: $3"
}

# assert_log ERE WHAT: the milter log has a matching line.
assert_log() { assert_match "$(cat "$MW_LOG")" "$1" "$2"; }
assert_no_log() { assert_no_match "$(cat "$MW_LOG")" "$1" "$2"; }

# assert_accept_logged QID WHAT: the milter logged its accept decision for Postfix queue id QID.
assert_accept_logged() {
	assert_log "milter-warden\[[0-9]+\]: [A-Za-z]+: $1: .*action=accept" "$2"
}

# assert_queue_empty WHAT: nothing waits in the private Postfix queue (nothing deferred,
# nothing stuck in active).
assert_queue_empty() {
	local q
	q=$(postqueue -c "$PF_DIR" -p 2>&1 || true)
	assert_match "$q" '^Mail queue is empty' "$1"
}

# ---------------------------------------------------------------- small utilities

# log_mark FILE: current number of lines (an offset for log_since / wait_for_log).
log_mark() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }

# log_since FILE MARK: the lines added after MARK.
log_since() { tail -n "+$(($2 + 1))" "$1" 2>/dev/null || true; }

# wait_for_log ERE SECONDS [MARK]: wait until a milter log line after MARK matches ERE.
wait_for_log() {
	local ere=$1 secs=$(($2 * SCALE)) mark=${3:-0} i
	for ((i = 0; i < secs * 10; i++)); do
		log_since "$MW_LOG" "$mark" | grep -Eq -- "$ere" && return 0
		sleep 0.1
	done
	return 1
}

# alive PID: the process exists and is not a zombie.
alive() {
	local state
	[[ -n $1 && -r /proc/$1/stat ]] || return 1
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

# wait_gone PID SECONDS: wait until PID is gone (or a zombie); 1 on timeout.
wait_gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

# ere_quote STRING: STRING as an ERE that matches it literally.
# shellcheck disable=SC2001 # one sed beats a loop of ${//} over every special character
ere_quote() { sed 's/[][\.*^$+?(){}|]/\\&/g' <<<"$1"; }

# unique_token: a string that appears in one test message only.
unique_token() { printf 'MWTOKEN-%s-%s-%s' "$$" "$(date +%s%N)" "$RANDOM"; }

# mkmsg FILE SUBJECT TOKEN FROM TO...: write an RFC 5322 message whose body carries TOKEN.
mkmsg() {
	local file=$1 subject=$2 token=$3 from=$4
	shift 4
	local to
	to=$(printf '<%s>, ' "$@")
	{
		printf 'From: <%s>\n' "$from"
		printf 'To: %s\n' "${to%, }"
		printf 'Subject: %s\n' "$subject"
		printf 'Date: %s\n' "$(date -R)"
		printf 'Message-ID: <%s@mw-test.example>\n' "$token"
		printf 'X-MW-Test: header kept intact\n'
		printf '\n'
		printf 'Body of a milter-warden integration test message.\n'
		printf 'Token: %s\n' "$token"
		printf '.a line that starts with a dot\n'
		printf 'Last line.\n'
	} >"$file"
}

# ---------------------------------------------------------------- setup and teardown

it_init() {
	[[ $(id -u) == 0 ]] || {
		echo "FAIL: integration tests need root (private Postfix master, privilege drop)"
		exit 1
	}
	local tool
	for tool in postfix postqueue smtp-sink swaks "$PY"; do
		command -v "$tool" >/dev/null || {
			echo "FAIL: $tool not found; run tests/install-deps"
			exit 1
		}
	done
	[[ -x $MW_BIN ]] || {
		echo "FAIL: no daemon binary at $MW_BIN (build first, or set MW_BIN)"
		exit 1
	}
	if [[ $MW_VALGRIND == 1 ]] && ! command -v valgrind >/dev/null; then
		echo "FAIL: MW_VALGRIND=1 but valgrind is not installed"
		exit 1
	fi
	if ! getent passwd "$MW_USER" >/dev/null; then
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "milter-warden daemon" "$MW_USER"
	fi

	T=$(mktemp -d /tmp/mw-it.XXXXXXXX)
	trap it_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# Postfix daemons (user postfix) must reach the queue and the sink directory.
	chmod 0755 "$T"
	mkdir -p "$T/pf" "$T/spool" "$T/data" "$T/sink" "$T/run" "$T/log" "$T/msg" "$T/out"
	chown postfix: "$T/data" "$T/sink"
	# The daemon drops to milter-warden and must still remove its socket and pidfile;
	# smtpd and cleanup (group postfix) only need to reach the socket.
	chown "$MW_USER:postfix" "$T/run"
	chmod 0750 "$T/run"

	PF_DIR=$T/pf
	MW_CONF=$T/mw.conf
	MW_LOG=$T/log/mw.log
	: >"$MW_LOG"
	local ports
	ports=$("$PY" "$HARNESS_PY" free-ports 2)
	SMTPD_PORT=$(sed -n 1p <<<"$ports")
	SINK_PORT=$(sed -n 2p <<<"$ports")
	# The shipped rulesets, as the default configuration names them.
	MW_RULES="$MW_TOP/rules/mx.rules, $MW_TOP/rules/submission.rules"
	mw_config
	note "harness: $T (smtpd 127.0.0.1:$SMTPD_PORT, sink 127.0.0.1:$SINK_PORT)"
}

it_cleanup() {
	local rc=$? pid f
	set +e
	trap - HUP INT TERM
	session_abort
	[[ $PF_STARTED == 1 ]] && pf_stop quiet
	for pid in $MW_PID "${MW_EXTRA_PIDS[@]}"; do
		alive "$pid" || continue
		kill -TERM "$pid" 2>/dev/null
		wait_gone "$pid" $((5 * SCALE)) || kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [[ -n $SINK_PID ]] && alive "$SINK_PID"; then
		kill -TERM "$SINK_PID" 2>/dev/null
		wait_gone "$SINK_PID" 5 || kill -KILL "$SINK_PID" 2>/dev/null
		wait "$SINK_PID" 2>/dev/null
	fi
	if [[ $MW_VALGRIND == 1 && -n $T ]]; then
		for f in "$T"/log/valgrind.*.log; do
			[[ -f $f ]] || continue
			if grep -Eq 'ERROR SUMMARY: [1-9]' "$f"; then
				echo "FAIL: valgrind reported errors in $f"
				sed 's/^/  | /' "$f" | tail -n 60
				rc=1
			fi
		done
	fi
	if [[ -n $T && -d $T ]]; then
		if [[ $rc == 0 && $MW_KEEP != 1 ]]; then
			rm -rf "$T"
		else
			echo "harness: kept $T"
		fi
	fi
	exit "$rc"
}

# it_start: the whole chain, in dependency order.
it_start() {
	sink_start
	mw_start
	pf_start
}

# ---------------------------------------------------------------- milter-warden

# mw_config [key=value]...: (re)write $MW_CONF from the harness defaults plus overrides, in
# order. A value of "-" drops the key. The file is replaced atomically, so a SIGHUP never sees
# half a file.
mw_config() {
	local -a keys=(socket socket_mode socket_group user pidfile rules shutdown_timeout)
	local -A val=(
		[socket]="unix:$T/run/mw.sock"
		[socket_mode]=0660
		[socket_group]=postfix
		[user]=$MW_USER
		[pidfile]=$T/run/mw.pid
		[rules]=$MW_RULES
		[shutdown_timeout]=15
	)
	local kv k
	for kv in "$@"; do
		k=${kv%%=*}
		[[ -v "val[$k]" ]] || keys+=("$k")
		val[$k]=${kv#*=}
	done
	{
		echo "# milter-warden configuration written by tests/integration/lib.sh"
		for k in "${keys[@]}"; do
			[[ ${val[$k]} == - ]] || printf '%s = %s\n' "$k" "${val[$k]}"
		done
	} >"$MW_CONF.new"
	chmod 0644 "$MW_CONF.new"
	mv -f "$MW_CONF.new" "$MW_CONF"
}

# shipped_config OUT: the repository's packaging/milter-warden.conf with only the paths that
# must live in $T changed (socket, pidfile, rules); everything else as shipped.
shipped_config() {
	local src=$MW_TOP/packaging/milter-warden.conf out=$1
	[[ -r $src ]] || fail "no shipped configuration at $src"
	sed -e "s|^socket = .*|socket = unix:$T/run/mw.sock|" \
		-e "s|^#\{0,1\}pidfile =.*|pidfile = $T/run/mw.pid|" \
		-e "s|^rules = .*|rules = $MW_RULES|" "$src" >"$out"
	chmod 0644 "$out"
	if ! grep -q "^socket = unix:$T/run/mw.sock\$" "$out" ||
		! grep -q "^pidfile = $T/run/mw.pid\$" "$out" ||
		! grep -q "^rules = $MW_RULES\$" "$out"; then
		fail "harness: could not adapt $src (socket, pidfile and rules lines expected)"
	fi
}

# mw_config_line KEY: line number of KEY in $MW_CONF (for FILE:LINE:COL expectations).
mw_config_line() { grep -n -E "^$1[[:space:]]*=" "$MW_CONF" | head -n1 | cut -d: -f1; }

# mw_spawn CONF LOG [args...]: start a daemon in the foreground as a background job, as root;
# sets SPAWNED_PID. Under MW_VALGRIND=1 it runs inside valgrind (same pid: valgrind execs).
mw_spawn() {
	local conf=$1 log=$2
	shift 2
	if [[ $MW_VALGRIND == 1 ]]; then
		# Leaks count as errors when definite: "possibly lost" blocks are the stacks of
		# libmilter's detached session threads still running at exit. No vgdb: the FIFOs
		# it makes in /tmp as root could not be removed after the privilege drop.
		valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
			--vgdb=no --log-file="$T/log/valgrind.%p.log" \
			"$MW_BIN" -f -c "$conf" "$@" </dev/null >>"$log" 2>&1 &
	else
		"$MW_BIN" -f -c "$conf" "$@" </dev/null >>"$log" 2>&1 &
	fi
	SPAWNED_PID=$!
}

# mw_start [args...]: start milter-warden -f -c $MW_CONF and wait (bounded) until it logs
# "ready". Fails with the log if it exits or stays silent.
mw_start() {
	local mark i
	mark=$(log_mark "$MW_LOG")
	mw_spawn "$MW_CONF" "$MW_LOG" "$@"
	MW_PID=$SPAWNED_PID
	for ((i = 0; i < 100 * SCALE; i++)); do
		if log_since "$MW_LOG" "$mark" | grep -Eq "milter-warden\[$MW_PID\]: [A-Za-z]+: ready\b"; then
			note "milter-warden running, pid $MW_PID"
			return 0
		fi
		if ! alive "$MW_PID"; then
			local rc=0
			wait "$MW_PID" || rc=$?
			MW_PID=
			fail "milter-warden exited during startup with status $rc"
		fi
		sleep 0.1
	done
	if [[ -S $T/run/mw.sock ]]; then
		fail "milter-warden created its socket but never logged 'ready' within $((10 * SCALE))s"
	fi
	fail "milter-warden did not get ready within $((10 * SCALE))s"
}

# mw_signal SIG: send a signal to the running daemon.
mw_signal() {
	alive "$MW_PID" || fail "milter-warden (pid ${MW_PID:-none}) is not running"
	kill "-$1" "$MW_PID"
}

# mw_wait_exit SECONDS: wait (bounded) for the daemon to exit; sets MW_STATUS. Fails on a
# timeout, and on a valgrind error exit (99) when MW_VALGRIND=1.
mw_wait_exit() {
	wait_gone "$MW_PID" $(($1 * SCALE)) ||
		fail "milter-warden (pid $MW_PID) still running $(($1 * SCALE))s after the signal"
	MW_STATUS=0
	wait "$MW_PID" || MW_STATUS=$?
	if [[ $MW_VALGRIND == 1 && $MW_STATUS == 99 ]]; then
		sed 's/^/  | /' "$T/log/valgrind.$MW_PID.log" | tail -n 60
		MW_PID=
		fail "valgrind reported errors in milter-warden"
	fi
	MW_PID=
}

# mw_stop: SIGTERM, wait for the exit, and require exit status 0 (contract: graceful stop).
mw_stop() {
	mw_signal TERM
	mw_wait_exit 20
	assert_eq "$MW_STATUS" 0 "milter-warden exit status after SIGTERM"
}

# mw_reload: SIGHUP, then wait (bounded) for the daemon's "reload:" verdict line; prints it
# into RELOAD_LINE. RELOAD_MARK is the log offset before the signal.
mw_reload() {
	RELOAD_MARK=$(log_mark "$MW_LOG")
	mw_signal HUP
	wait_for_log 'reload: ' 10 "$RELOAD_MARK" ||
		fail "no 'reload:' line in the milter log within $((10 * SCALE))s of SIGHUP"
	# Give the error lines that follow a failed reload a moment to be written.
	sleep 0.3
	RELOAD_LINE=$(log_since "$MW_LOG" "$RELOAD_MARK" | grep -E 'reload: ' | head -n1)
	note "after SIGHUP: ${RELOAD_LINE#*: }"
}

# ---------------------------------------------------------------- smtp-sink

sink_start() {
	local i
	smtp-sink -u postfix -d "$T/sink/msg." "127.0.0.1:$SINK_PORT" 256 \
		</dev/null >>"$T/log/sink.log" 2>&1 &
	SINK_PID=$!
	for ((i = 0; i < 50; i++)); do
		"$PY" "$HARNESS_PY" is-listening "$SINK_PORT" && return 0
		alive "$SINK_PID" || fail "smtp-sink exited"
		sleep 0.1
	done
	fail "smtp-sink not listening on 127.0.0.1:$SINK_PORT after 5s"
}

sink_stop() {
	[[ -n $SINK_PID ]] || return 0
	kill -TERM "$SINK_PID" 2>/dev/null || true
	wait_gone "$SINK_PID" 5 || kill -KILL "$SINK_PID" 2>/dev/null || true
	wait "$SINK_PID" 2>/dev/null || true
	SINK_PID=
}

# sink_count: number of messages the sink received.
sink_count() { find "$T/sink" -maxdepth 1 -name 'msg.*' -type f | wc -l; }

# sink_find TOKEN: the sink files that contain TOKEN (one a line; nothing if none).
sink_find() { grep -l -F -- "$1" "$T"/sink/msg.* 2>/dev/null || true; }

# sink_one TOKEN WHAT: exactly one delivered message carries TOKEN; sets SINK_FILE.
sink_one() {
	local files n
	files=$(sink_find "$1")
	n=$(grep -c . <<<"$files" || true)
	[[ $n == 1 ]] || fail "$2: expected exactly one delivered message with $1, found $n"
	SINK_FILE=$files
	note "ok: $2 ($(basename "$SINK_FILE"))"
}

# sink_rcpts FILE: the envelope recipients smtp-sink saw for that message, sorted.
# smtp-sink writes one "X-Rcpt-Args: <addr> ORCPT=..." line per recipient.
sink_rcpts() {
	sed -n 's/^X-Rcpt-Args: *\(TO: *\)\{0,1\}<\([^>]*\)>.*/\2/Ip' "$1" | sort
}

# body_of FILE: the body of a message file (sent or delivered: everything after the first
# empty line), without trailing empty lines (swaks and smtp-sink each add one).
body_of() { sed '1,/^$/d' "$1" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'; }

# ---------------------------------------------------------------- private Postfix

pf_write_config() {
	cat >"$PF_DIR/main.cf" <<EOF
# Private Postfix for milter-warden integration tests. Nothing leaves 127.0.0.1.
compatibility_level = 3.6
queue_directory = $T/spool
data_directory = $T/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.mw-test.example
mydomain = mw-test.example
myorigin = \$myhostname
mydestination =
local_transport = error:local delivery is disabled in this test instance
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
readme_directory = no

inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
smtpd_tls_security_level = none

# Everything goes to the capture sink; no DNS.
relayhost = [127.0.0.1]:$SINK_PORT
default_transport = smtp:[127.0.0.1]:$SINK_PORT
relay_transport = smtp:[127.0.0.1]:$SINK_PORT
transport_maps = texthash:$PF_DIR/transport
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_bind_address = 127.0.0.1
smtp_tls_security_level = none
smtp_connect_timeout = 5s
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s

# The milter under test. A dead milter must mean 4xx, never silent acceptance.
smtpd_milters = unix:$T/run/mw.sock
non_smtpd_milters =
milter_protocol = 6
milter_default_action = tempfail
milter_connect_timeout = 10s
milter_command_timeout = 10s
milter_content_timeout = 30s

# No syslog on these machines.
maillog_file = $T/log/maillog
maillog_file_prefixes = $T/log
EOF
	# chroot off everywhere: a chrooted smtpd/cleanup could not reach the unix: milter socket.
	cat >"$PF_DIR/master.cf" <<EOF
127.0.0.1:$SMTPD_PORT inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n - 0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n - - trivial-rewrite
bounce     unix  - - n - 0 bounce
defer      unix  - - n - 0 bounce
trace      unix  - - n - 0 bounce
verify     unix  - - n - 1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n - - proxymap
proxywrite unix  - - n - 1 proxymap
smtp       unix  - - n - - smtp
relay      unix  - - n - - smtp
showq      unix  n - n - - showq
error      unix  - - n - - error
retry      unix  - - n - - error
discard    unix  - - n - - discard
anvil      unix  - - n - 1 anvil
scache     unix  - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
	printf '* smtp:[127.0.0.1]:%s\n' "$SINK_PORT" >"$PF_DIR/transport"
	pf_write_extras
}

# pf_make_spool: create the queue and data directories as Postfix's own postfix-files says
# (owner, group, mode), and mark the queue for a quick start. "postfix start" then skips its
# integrity checks, which take seconds and have nothing to find in a new, empty queue.
pf_make_spool() {
	local files path type owner group mode rest
	files=$(postconf -h meta_directory 2>/dev/null || echo /etc/postfix)/postfix-files
	[[ -r $files ]] || return 0
	# shellcheck disable=SC2016 # the '$name' strings are literal text in postfix-files
	while IFS=: read -r path type owner group mode rest; do
		[[ $type == d ]] || continue
		case $path in
		'$queue_directory'*) path=$T/spool${path#'$queue_directory'} ;;
		'$data_directory'*) path=$T/data${path#'$data_directory'} ;;
		*) continue ;;
		esac
		owner=${owner/'$mail_owner'/postfix}
		group=${group/'$setgid_group'/postdrop}
		if [[ $group == - ]]; then
			install -d -o "$owner" -m "$mode" "$path"
		else
			install -d -o "$owner" -g "$group" -m "$mode" "$path"
		fi
	done <"$files"
	: >"$T/spool/quick-start"
}

# pf_start: write the configuration, start the private master, wait for smtpd's port.
pf_start() {
	local i
	pf_write_config
	[[ -e $T/spool/pid ]] || pf_make_spool
	# "postfix start" is master -w behind a script whose logging alone costs two seconds
	# when postlogd is not up yet; the master itself, on a spool made as above, is what it
	# would run. "postfix -c DIR stop" and postqueue work the same either way.
	local master
	master=$(postconf -h daemon_directory 2>/dev/null)/master
	if [[ -e $T/spool/quick-start && -x $master ]]; then
		rm -f "$T/spool/quick-start"
		if ! "$master" -c "$PF_DIR" -w >>"$T/log/postfix-start.log" 2>&1; then
			sed 's/^/  | /' "$T/log/postfix-start.log"
			fail "$master -c $PF_DIR -w failed"
		fi
	elif ! postfix -c "$PF_DIR" start >>"$T/log/postfix-start.log" 2>&1; then
		sed 's/^/  | /' "$T/log/postfix-start.log"
		fail "postfix -c $PF_DIR start failed"
	fi
	PF_STARTED=1
	for ((i = 0; i < 100; i++)); do
		"$PY" "$HARNESS_PY" is-listening "$SMTPD_PORT" && return 0
		sleep 0.1
	done
	fail "Postfix smtpd not listening on 127.0.0.1:$SMTPD_PORT after 10s"
}

# pf_stop [quiet]: stop the private master and wait (bounded) until it is gone.
pf_stop() {
	local pid=
	[[ $PF_STARTED == 1 ]] || return 0
	[[ -r $T/spool/pid/master.pid ]] && pid=$(tr -dc 0-9 <"$T/spool/pid/master.pid")
	postfix -c "$PF_DIR" stop >>"$T/log/postfix-start.log" 2>&1 || true
	if [[ -n $pid ]] && ! wait_gone "$pid" 15; then
		[[ ${1:-} == quiet ]] || note "Postfix master $pid ignored 'postfix stop'; killing it"
		postfix -c "$PF_DIR" abort >>"$T/log/postfix-start.log" 2>&1 || true
		kill -KILL "$pid" 2>/dev/null || true
	fi
	PF_STARTED=0
}

# ---------------------------------------------------------------- sending mail

# send [swaks options]...: one SMTP session with swaks to the private smtpd. Prints the
# transcript (also kept in $T/out/) and always returns 0: the test asserts on the transcript.
send() {
	local out rc=0
	SEND_SEQ=$((SEND_SEQ + 1))
	out=$T/out/swaks.$SEND_SEQ.txt
	swaks --server 127.0.0.1 --port "$SMTPD_PORT" --helo "$HELO" \
		--from sender@mw-test.example --timeout $((60 * SCALE)) "$@" >"$out" 2>&1 || rc=$?
	echo "=== swaks exit status $rc" >>"$out"
	cat "$out"
}

# queue_id TRANSCRIPT: the Postfix queue id from "250 2.0.0 Ok: queued as QID" (empty if none).
queue_id() { sed -n 's/.*queued as \([0-9A-Za-z]\{1,\}\).*/\1/p' <<<"$1" | tail -n 1; }

# wait_for_delivery N: wait (bounded) until the sink holds N messages in total and the
# Postfix queue is empty.
wait_for_delivery() {
	local want=$1 i
	for ((i = 0; i < 200 * SCALE; i++)); do
		if (($(sink_count) >= want)) &&
			postqueue -c "$PF_DIR" -p 2>/dev/null | grep -q '^Mail queue is empty'; then
			note "ok: $want message(s) delivered to the sink, queue empty"
			return 0
		fi
		sleep 0.1
	done
	fail "expected $want delivered message(s) within $((20 * SCALE))s, the sink has $(sink_count)"
}

# --- one SMTP session held open across other actions (harness.py chat as a coprocess)

# session_open: connect and EHLO; SESSION_REPLY is the EHLO reply.
session_open() {
	[[ -z $CHAT_PID ]] || fail "harness: a session is already open"
	coproc MWCHAT { exec "$PY" "$HARNESS_PY" chat "$SMTPD_PORT" "$HELO" 2>>"$T/log/chat.log"; }
	# shellcheck disable=SC2153 # set by coproc
	CHAT_PID=$MWCHAT_PID
	# bash unsets MWCHAT when the coprocess ends: keep our own copies of its pipes.
	exec {CHAT_IN}<&"${MWCHAT[0]}" {CHAT_OUT}>&"${MWCHAT[1]}"
	_session_read CONNECT+EHLO
}

# session LINE: send one harness.py chat command (MAIL a@b, RCPT a@b, DATA file, RSET, QUIT);
# SESSION_REPLY is the server's reply, "CODE TEXT".
session() {
	[[ -n $CHAT_PID ]] || fail "harness: no SMTP session open"
	printf '%s\n' "$*" >&"$CHAT_OUT" || fail "SMTP session: cannot send '$*'"
	_session_read "$*"
}

_session_read() {
	if ! read -r -t $((90 * SCALE)) -u "$CHAT_IN" SESSION_REPLY; then
		fail "SMTP session: no reply to '$1' within $((90 * SCALE))s"
	fi
	note "smtp: $1 -> $SESSION_REPLY"
}

# session_close: QUIT and reap the client.
session_close() {
	session QUIT
	wait_gone "$CHAT_PID" 10 || kill -TERM "$CHAT_PID" 2>/dev/null || true
	wait "$CHAT_PID" 2>/dev/null || true
	exec {CHAT_IN}<&- {CHAT_OUT}>&-
	CHAT_PID=
}

# session_abort: drop the client without QUIT (cleanup path).
session_abort() {
	[[ -n $CHAT_PID ]] || return 0
	kill -TERM "$CHAT_PID" 2>/dev/null || true
	wait "$CHAT_PID" 2>/dev/null || true
	exec {CHAT_IN}<&- {CHAT_OUT}>&- 2>/dev/null || true
	CHAT_PID=
}

# ---------------------------------------------------------------- rules files

# rules_write FILE: write the rules read from standard input to FILE (a path in $T), readable
# by the daemon after its privilege drop. The file is replaced atomically, so a SIGHUP never
# sees half a file. Point the daemon at it with mw_config rules=FILE.
rules_write() {
	cat >"$1.new"
	chmod 0644 "$1.new"
	mv -f "$1.new" "$1"
}

# rules_check FILE WHAT: "milter-warden -n" accepts a configuration (written in $T) naming FILE;
# catches a test whose own rules are wrong before any mail is sent.
rules_check() {
	local conf out
	conf=$T/check.$(basename "$1").conf
	printf 'user = %s\nrules = %s\n' "$MW_USER" "$1" >"$conf"
	out=$("$MW_BIN" -n -c "$conf" 2>&1) || {
		printf '%s\n' "$out" | sed 's/^/  | /' >&2
		fail "$2: milter-warden -n refused $1"
	}
	note "ok: $2"
}

# sink_header FILE NAME: every NAME: header field in the header section of a delivered message,
# as it stands there ("Name: value", name without case), one a line; the first line of a folded
# field only.
sink_header() { sed -n '/^$/q; /^'"$2"':/Ip' "$1"; }

# wait_for_sink TOKEN SECONDS: wait (bounded) until a delivered message carries TOKEN; for a
# test that leaves something in the queue on purpose (wait_for_delivery wants it empty).
wait_for_sink() {
	local i
	for ((i = 0; i < $2 * 10 * SCALE; i++)); do
		[[ -n $(sink_find "$1") ]] && return 0
		sleep 0.1
	done
	fail "no delivered message with $1 within $(($2 * SCALE))s"
}

# ---------------------------------------------------------------- relay and authentication policy

# Extra main.cf parameters and master.cf services for the private Postfix, set by pf_main and
# pf_listener before pf_start (or before a pf_stop/pf_start pair). Empty: the harness defaults.
declare -A PF_MAIN_EXTRA=()
declare -a PF_MAIN_EXTRA_KEYS=()
declare -a PF_MASTER_EXTRA=()
declare -a PF_EXTRA_PORTS=()

# pf_main KEY=VALUE...: set main.cf parameters of the private Postfix, after the harness
# defaults (a key the harness sets is replaced in place with postconf -e, not repeated). An
# empty VALUE ("smtpd_recipient_restrictions=") sets the parameter to empty.
pf_main() {
	local kv k
	for kv in "$@"; do
		[[ $kv == *=* ]] || fail "harness: pf_main wants KEY=VALUE, got '$kv'"
		k=${kv%%=*}
		[[ -v "PF_MAIN_EXTRA[$k]" ]] || PF_MAIN_EXTRA_KEYS+=("$k")
		PF_MAIN_EXTRA[$k]=${kv#*=}
	done
}

# pf_listener VAR [NAME=VALUE]...: one more smtpd service in the private master.cf, on a free
# port of 127.0.0.1 that goes into the variable VAR, with "-o NAME=VALUE" for each argument
# (no white space in a VALUE). E.g. a submission listener:
#     pf_listener SUBMIT_PORT milter_macro_daemon_name=ORIGINATING smtpd_sasl_auth_enable=yes
pf_listener() {
	local var=$1 port kv line i
	shift
	for ((i = 0; i < 20; i++)); do
		port=$("$PY" "$HARNESS_PY" free-ports 1)
		[[ $port != "$SMTPD_PORT" && $port != "$SINK_PORT" &&
			" ${PF_EXTRA_PORTS[*]} " != *" $port "* ]] && break
		port=
	done
	[[ -n $port ]] || fail "harness: no free port for another listener"
	PF_EXTRA_PORTS+=("$port")
	line="127.0.0.1:$port inet n - n - - smtpd"
	for kv in "$@"; do
		[[ $kv == *=* && $kv != *[[:space:]]* ]] ||
			fail "harness: pf_listener wants NAME=VALUE without white space, got '$kv'"
		line+=" -o $kv"
	done
	PF_MASTER_EXTRA+=("$line")
	printf -v "$var" '%s' "$port"
	note "harness: extra smtpd listener 127.0.0.1:$port${*:+ ($*)}"
}

# pf_write_extras: apply pf_main and pf_listener to the files pf_write_config just wrote
# (called at its end; nothing to do when neither was used).
pf_write_extras() {
	local -a kvs=()
	local k line
	for k in "${PF_MAIN_EXTRA_KEYS[@]}"; do kvs+=("$k=${PF_MAIN_EXTRA[$k]}"); done
	if ((${#kvs[@]} > 0)); then
		postconf -c "$PF_DIR" -e "${kvs[@]}" || fail "harness: postconf -e ${kvs[*]} failed"
	fi
	for line in "${PF_MASTER_EXTRA[@]}"; do printf '%s\n' "$line" >>"$PF_DIR/master.cf"; done
}

# pf_wait_listening PORT: wait (bounded) until the private Postfix listens on 127.0.0.1:PORT
# (pf_start waits for $SMTPD_PORT only; the master opens every listener at once).
pf_wait_listening() {
	local i
	for ((i = 0; i < 100; i++)); do
		"$PY" "$HARNESS_PY" is-listening "$1" && return 0
		sleep 0.1
	done
	fail "Postfix not listening on 127.0.0.1:$1 after 10s"
}

# pf_open_relay: make the private Postfix itself relay anything for the test client, and
# pass addresses with sender-specified routing through as written (no percent hack, no
# bang-path swap), so that only the milter stands between the client and an open relay:
# every loopback client is in mynetworks and permit_mynetworks comes first; no recipient
# restrictions; routing allowed. (Postfix refuses a bare "permit" as relay restrictions.)
pf_open_relay() {
	pf_main "mynetworks=127.0.0.0/8" \
		"smtpd_relay_restrictions=permit_mynetworks, reject_unauth_destination" \
		"smtpd_recipient_restrictions=" "smtpd_sender_restrictions=" \
		"smtpd_client_restrictions=" "smtpd_helo_restrictions=" \
		"allow_untrusted_routing=yes" "allow_percent_hack=no" "swap_bangpath=no"
}

# sasl_setup REALM USER:PASSWORD...: real SASL authentication in the private Postfix without
# any daemon: Cyrus SASL auxprop over a sasldb2 file in $T/sasl, mechanisms PLAIN and LOGIN
# (configured in $PF_DIR/sasl/smtpd.conf).
# Each USER gets PASSWORD in REALM; clients log in as USER@REALM, and that is what Postfix
# hands the milter as {auth_authen}. AUTH is off until a listener enables it
# (pf_listener VAR smtpd_sasl_auth_enable=yes); no TLS needed on loopback
# (smtpd_tls_auth_only = no).
sasl_setup() {
	local realm=$1 up
	shift
	command -v saslpasswd2 >/dev/null || fail "saslpasswd2 not found; run tests/install-deps"
	mkdir -p "$T/sasl"
	for up in "$@"; do
		printf '%s' "${up#*:}" |
			saslpasswd2 -p -f "$T/sasl/sasldb2" -c -u "$realm" "${up%%:*}" ||
			fail "harness: saslpasswd2 could not add ${up%%:*}@$realm"
	done
	# smtpd (user postfix) reads the database; nobody else needs to.
	chown root:postfix "$T/sasl/sasldb2"
	chmod 0640 "$T/sasl/sasldb2"
	# The application configuration smtpd.conf (smtpd_sasl_path = smtpd): Debian's Postfix
	# reads it from $config_directory/sasl whatever cyrus_sasl_config_path says; upstream
	# Postfix from cyrus_sasl_config_path. Both name $PF_DIR/sasl.
	mkdir -p "$PF_DIR/sasl"
	cat >"$PF_DIR/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $T/sasl/sasldb2
mech_list: PLAIN LOGIN
EOF
	chmod 0644 "$PF_DIR/sasl/smtpd.conf"
	pf_main smtpd_sasl_type=cyrus smtpd_sasl_path=smtpd "cyrus_sasl_config_path=$PF_DIR/sasl" \
		smtpd_sasl_security_options=noanonymous smtpd_tls_auth_only=no
}

# mw_file_write FILE: write standard input to FILE (a path in $T) for the daemon to read after
# its privilege drop (sender_login_map, local_domains_file, ...); replaced atomically.
mw_file_write() { rules_write "$1"; }

# send_port PORT [swaks options]...: like send, to another listener of the private Postfix.
send_port() {
	local port=$1 out rc=0
	shift
	SEND_SEQ=$((SEND_SEQ + 1))
	out=$T/out/swaks.$SEND_SEQ.txt
	swaks --server 127.0.0.1 --port "$port" --helo "$HELO" \
		--from sender@mw-test.example --timeout $((60 * SCALE)) "$@" >"$out" 2>&1 || rc=$?
	echo "=== swaks exit status $rc" >>"$out"
	cat "$out"
}

# ---------------------------------------------------------------- DKIM: keys, local DNS, independent verifiers
#
# Keys, public-key records, a DNS server on loopback that serves them (dnsmasq), and two
# verifiers outside milter-warden: python3-dkim (no code in common with it) and OpenDKIM's
# own (opendkim -t: libopendkim like milter-warden, but OpenDKIM's message handling around
# it, so what milter-warden fed the library is checked too). Both read the public keys from $DKIM_RECORDS, not from DNS, so their verdict
# on a captured message depends on nothing the test's DNS server does. Messages for the
# verification tests are signed by OpenDKIM (opendkim -t in sign mode, dkim_od_sign).
# Needs the packages opendkim, python3-dkim (with python3-nacl and python3-dnspython) and
# dnsmasq-base (tests/install-deps).
#
#     dkim_keygen rsa1 rsa                 # $T/dkim/rsa1.key, $T/dkim/rsa1.txt
#     dkim_publish sel1 example.org rsa1   # in $DKIM_RECORDS and in DNS
#     dns_start                            # dnsmasq on 127.0.0.1:$DNS_PORT
#     mw_config dkim_keys="example.org:sel1:$(dkim_key rsa1)" dns_servers="127.0.0.1:$DNS_PORT"
#     ...send, then sink_one TOKEN...; dkim_unsink "$SINK_FILE" "$T/msg/got.eml"
#     dkim_assert_verified "$T/msg/got.eml" 1 "the relayed message verifies"

DKIM_TOOL="$MW_TOP/tests/integration/dkim-tool.py"
DKIM_DIR=
DKIM_RECORDS=
DNS_PORT=
DNS_PID=
declare -a DNS_TXT=()     # "NAME<TAB>TXT-DATA", what dnsmasq serves
declare -a DNS_LOCAL=()   # domains answered locally: NXDOMAIN for every name not in DNS_TXT
declare -a DNS_SILENT=()  # domains forwarded to a port where nobody answers (DNS timeouts)

# dkim_init: the key directory $DKIM_DIR ($T/dkim) and an empty $DKIM_RECORDS; called by the
# functions below when needed.
dkim_init() {
	[[ -n $DKIM_DIR ]] && return 0
	local tool
	for tool in openssl /usr/sbin/opendkim /usr/sbin/dnsmasq; do
		command -v "$tool" >/dev/null ||
			fail "$tool not found (packages openssl, opendkim, dnsmasq-base)"
	done
	"$PY" -c 'import dkim, nacl' 2>/dev/null ||
		fail "$PY cannot import dkim and nacl (packages python3-dkim, python3-nacl)"
	DKIM_DIR=$T/dkim
	mkdir -p "$DKIM_DIR/od"
	chmod 0755 "$DKIM_DIR"
	DKIM_RECORDS=$DKIM_DIR/records
	: >"$DKIM_RECORDS"
	chmod 0644 "$DKIM_RECORDS"
}

# dkim_keygen NAME TYPE: a new private key $T/dkim/NAME.key (PEM, PKCS#8 as openssl genpkey
# writes it; owner milter-warden, mode 0600, so reloads after the privilege drop can read it)
# and its DKIM public-key record in $T/dkim/NAME.txt. TYPE: rsa (2048 bits), rsa1024,
# rsa3072, ed25519. RSA: p= is the base64 DER SubjectPublicKeyInfo; Ed25519 (RFC 8463):
# k=ed25519 and p= the base64 raw 32-byte public key.
dkim_keygen() {
	local name=$1 type=$2 key txt pub
	dkim_init
	key=$DKIM_DIR/$name.key
	txt=$DKIM_DIR/$name.txt
	(
		umask 077
		case $type in
		rsa | rsa2048) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" ;;
		rsa1024) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$key" ;;
		rsa3072) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$key" ;;
		ed25519) openssl genpkey -algorithm ed25519 -out "$key" ;;
		*) exit 2 ;;
		esac
	) 2>>"$T/log/dkim-keygen.log" || fail "harness: cannot make a $type key $key"
	chown "$MW_USER:" "$key"
	chmod 0600 "$key"
	case $type in
	ed25519)
		# The DER SubjectPublicKeyInfo of an Ed25519 key is 12 bytes of algorithm
		# identifier followed by the 32-byte key.
		pub=$(openssl pkey -in "$key" -pubout -outform DER | tail -c 32 | base64 -w0)
		printf 'v=DKIM1; k=ed25519; p=%s\n' "$pub" >"$txt"
		;;
	*)
		pub=$(openssl pkey -in "$key" -pubout -outform DER | base64 -w0)
		printf 'v=DKIM1; k=rsa; p=%s\n' "$pub" >"$txt"
		;;
	esac
	[[ -n $pub ]] || fail "harness: no public key from $key"
}

# dkim_key NAME: the path of key NAME.
dkim_key() { printf '%s\n' "$DKIM_DIR/$1.key"; }

# dkim_txt NAME: the public-key record of key NAME.
dkim_txt() { cat "$DKIM_DIR/$1.txt"; }

# dkim_publish SELECTOR DOMAIN NAME: publish key NAME as SELECTOR._domainkey.DOMAIN, for the
# verifiers ($DKIM_RECORDS) and for DNS (from the next dns_start or dns_restart).
# dkim_publish_txt SELECTOR DOMAIN TXT: the same with a record given as text.
dkim_publish() { dkim_publish_txt "$1" "$2" "$(dkim_txt "$3")"; }
dkim_publish_txt() {
	local name="$1._domainkey.$2"
	dkim_init
	printf '%s %s\n' "$name" "$3" >>"$DKIM_RECORDS"
	DNS_TXT+=("$name"$'\t'"$3")
	dns_local "$2"
}

# dkim_unpublish SELECTOR DOMAIN: remove SELECTOR._domainkey.DOMAIN from DNS (from the next
# dns_restart); the verifiers' $DKIM_RECORDS keeps it.
dkim_unpublish() {
	local name="$1._domainkey.$2" i
	for i in "${!DNS_TXT[@]}"; do
		[[ ${DNS_TXT[$i]%%$'\t'*} == "$name" ]] && unset "DNS_TXT[$i]"
	done
	DNS_TXT=("${DNS_TXT[@]}")
}

# dns_local DOMAIN: the DNS server answers every name under DOMAIN itself (NXDOMAIN for a
# name not published): a selector with no key is a clean "no such key".
dns_local() {
	[[ " ${DNS_LOCAL[*]} " == *" $1 "* ]] || DNS_LOCAL+=("$1")
}

# dns_silent DOMAIN: queries for names under DOMAIN get no answer at all (forwarded to a
# port nobody listens on): the resolver times out, a temporary DNS failure.
dns_silent() {
	[[ " ${DNS_SILENT[*]} " == *" $1 "* ]] || DNS_SILENT+=("$1")
}

# dns_start: dnsmasq on 127.0.0.1:$DNS_PORT (a free port, UDP and TCP), serving DNS_TXT,
# authoritative-like for DNS_LOCAL, silent for DNS_SILENT, REFUSED for anything else; no
# upstream server, no /etc/hosts, nothing sent off the machine. Queries are logged in
# $T/log/dnsmasq.log. Stopped by dns_stop or the EXIT trap (its pid is in MW_EXTRA_PIDS).
dns_start() {
	local -a args
	local entry name txt chunk d i dead
	dkim_init
	[[ -z $DNS_PID ]] || fail "harness: dnsmasq already running"
	[[ -n $DNS_PORT ]] || DNS_PORT=$(dns_free_port)
	args=(--keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --no-poll
		--bind-interfaces --listen-address=127.0.0.1 --port="$DNS_PORT" --pid-file=
		--user=nobody --cache-size=0 --log-queries --log-facility="$T/log/dnsmasq.log")
	for d in "${DNS_LOCAL[@]}"; do args+=("--local=/$d/"); done
	if ((${#DNS_SILENT[@]} > 0)); then
		dead=$(dns_free_port)
		for d in "${DNS_SILENT[@]}"; do args+=("--server=/$d/127.0.0.1#$dead"); done
	fi
	for entry in "${DNS_TXT[@]}"; do
		name=${entry%%$'\t'*}
		txt=${entry#*$'\t'}
		# One TXT record, split into character-strings of at most 255 bytes (a 2048-bit
		# RSA record is about 410); a verifier joins them. No quotes: dnsmasq removes them
		# in its configuration file only, on the command line they would be data; the
		# records hold no comma.
		[[ $txt != *,* ]] || fail "harness: a TXT record with a comma: $txt"
		chunk=
		while [[ -n $txt ]]; do
			chunk+=",${txt:0:255}"
			txt=${txt:255}
		done
		args+=("--txt-record=$name$chunk")
	done
	/usr/sbin/dnsmasq "${args[@]}" </dev/null >>"$T/log/dnsmasq.log" 2>&1 &
	DNS_PID=$!
	MW_EXTRA_PIDS+=("$DNS_PID")
	for ((i = 0; i < 50; i++)); do
		"$PY" "$HARNESS_PY" is-listening "$DNS_PORT" && {
			note "dnsmasq serving ${#DNS_TXT[@]} key record(s) on 127.0.0.1:$DNS_PORT, pid $DNS_PID"
			return 0
		}
		alive "$DNS_PID" || {
			sed 's/^/  | /' "$T/log/dnsmasq.log" >&2
			fail "dnsmasq exited during startup"
		}
		sleep 0.1
	done
	fail "dnsmasq not listening on 127.0.0.1:$DNS_PORT after 5s"
}

# dns_free_port: a port free for both TCP and UDP on 127.0.0.1.
dns_free_port() {
	"$PY" - <<'PYEOF'
import socket
for _ in range(50):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close()
        continue
    u.close()
    t.close()
    print(port)
    break
PYEOF
}

# dns_stop: stop dnsmasq (the port is kept for a dns_start that follows).
dns_stop() {
	[[ -n $DNS_PID ]] || return 0
	kill -TERM "$DNS_PID" 2>/dev/null || true
	wait_gone "$DNS_PID" 5 || kill -KILL "$DNS_PID" 2>/dev/null || true
	wait "$DNS_PID" 2>/dev/null || true
	DNS_PID=
}

# dns_restart: serve the current records (dnsmasq reads --txt-record only at start).
dns_restart() {
	dns_stop
	dns_start
}

# dns_query NAME: the TXT data dnsmasq serves for NAME (character-strings joined), or
# "RCODE" (e.g. NXDOMAIN) when there is none; to check the test's own DNS.
dns_query() {
	"$PY" - "$1" "$DNS_PORT" <<'PYEOF'
import sys
import dns.message, dns.query, dns.rcode
q = dns.message.make_query(sys.argv[1], "TXT")
try:
    r = dns.query.udp(q, "127.0.0.1", port=int(sys.argv[2]), timeout=2)
except Exception as e:
    print("TIMEOUT" if "timed out" in str(e) else "ERROR %s" % e)
    sys.exit(0)
txt = [b"".join(a.strings).decode() for rr in r.answer for a in rr]
print(txt[0] if txt else dns.rcode.to_text(r.rcode()))
PYEOF
}

# dkim_unsink SINKFILE OUT: the message as Postfix relayed it (see dkim-tool.py unsink).
dkim_unsink() {
	"$PY" "$DKIM_TOOL" unsink "$1" "$2" || fail "cannot recover the relayed message from $1"
}

# dkim_capture TOKEN OUT WHAT: exactly one delivered message carries TOKEN (sink_one); it is
# written to OUT as Postfix relayed it.
dkim_capture() {
	sink_one "$1" "$3"
	dkim_unsink "$SINK_FILE" "$2"
}

# dkim_verify_py MSG / dkim_verify_od MSG: one line per DKIM-Signature of MSG, top one
# first: "RESULT d=... s=... a=... [reason]" from python3-dkim / from OpenDKIM.
dkim_verify_py() {
	"$PY" "$DKIM_TOOL" verify-py "$1" "$DKIM_RECORDS" 2>&1 || echo "error: python3-dkim verifier failed"
}
dkim_verify_od() {
	"$PY" "$DKIM_TOOL" verify-od "$1" "$DKIM_RECORDS" "$DKIM_DIR/od" 2>&1 ||
		echo "error: opendkim verifier failed"
}

# dkim_sigs MSG: the tags of each DKIM-Signature ("pos=N a=... d=... s=... c=... h=..."),
# dkim_fields MSG: the header field names in order, dkim_ar MSG: the Authentication-Results
# clauses ("AUTHSERV-ID<TAB>dkim=RESULT header.d=... ..."); see dkim-tool.py.
dkim_sigs() { "$PY" "$DKIM_TOOL" sigs "$1"; }
dkim_fields() { "$PY" "$DKIM_TOOL" fields "$1"; }
dkim_ar() { "$PY" "$DKIM_TOOL" ar "$1"; }

# dkim_assert_verified MSG N WHAT: MSG carries exactly N DKIM signatures and python3-dkim
# and OpenDKIM both verify every one of them.
dkim_assert_verified() {
	local msg=$1 n=$2 what=$3 v verdicts
	for v in py od; do
		verdicts=$("dkim_verify_$v" "$msg")
		if [[ $(grep -c . <<<"$verdicts") != "$n" ]] || grep -qv '^pass ' <<<"$verdicts"; then
			printf -- '--- %s verdicts:\n%s\n--- signatures:\n%s\n' "$v" "$verdicts" \
				"$(dkim_sigs "$msg")" | sed 's/^/  > /' >&2
			fail "$what: expected $n signature(s), all passing ($([[ $v == py ]] && echo python3-dkim || echo OpenDKIM))"
		fi
		note "ok: $what ($([[ $v == py ]] && echo python3-dkim || echo OpenDKIM): $(tr '\n' ';' <<<"$verdicts" | sed 's/;$//'))"
	done
}

# dkim_assert_not_verified MSG WHAT: MSG carries at least one signature and both verifiers
# fail every one of them (fail or permerror, not merely "no verdict").
dkim_assert_not_verified() {
	local msg=$1 what=$2 v verdicts
	for v in py od; do
		verdicts=$("dkim_verify_$v" "$msg")
		if [[ -z $verdicts ]] || grep -Eqv '^(fail|permerror) ' <<<"$verdicts"; then
			printf -- '--- %s verdicts:\n%s\n' "$v" "$verdicts" | sed 's/^/  > /' >&2
			fail "$what: expected every signature to fail ($([[ $v == py ]] && echo python3-dkim || echo OpenDKIM))"
		fi
		note "ok: $what ($([[ $v == py ]] && echo python3-dkim || echo OpenDKIM): $(tr '\n' ';' <<<"$verdicts" | sed 's/;$//'))"
	done
}

# dkim_od_sign IN OUT DOMAIN SELECTOR KEYNAME [ALG]: sign IN with OpenDKIM's signer
# (opendkim -t, relaxed/relaxed, ALG rsa-sha256 by default or ed25519-sha256); OUT is IN with
# OpenDKIM's DKIM-Signature on top. Sign OUT again for a second signature.
dkim_od_sign() {
	dkim_init
	"$PY" "$DKIM_TOOL" od-sign "$1" "$2" "$DKIM_DIR/od" "$3" "$4" "$(dkim_key "$5")" "${6:-rsa-sha256}" ||
		fail "harness: OpenDKIM could not sign $1 for $3 with $5"
}

# dkim_body_edit IN OUT: OUT is IN with one character of its body changed (the last 'e'
# of the body becomes 'E', or an "x" appended to its last line).
dkim_body_edit() {
	"$PY" - "$1" "$2" <<'PYEOF'
import sys
m = open(sys.argv[1], "rb").read()
sep = b"\r\n\r\n" if b"\r\n\r\n" in m else b"\n\n"
h, b = m.split(sep, 1)
i = b.rfind(b"e")
b = b[:i] + b"E" + b[i + 1:] if i >= 0 else b.rstrip(b"\r\n") + b"x\r\n"
open(sys.argv[2], "wb").write(h + sep + b)
PYEOF
}

# dkim_add_header IN OUT "Name: value": OUT is IN with one more header field on top.
dkim_add_header() {
	{
		printf '%s\r\n' "$3"
		cat "$1"
	} >"$2"
}

# dkim_field MSG N: header field number N of MSG (0 = the first), unfolded on one line.
dkim_field() { "$PY" "$DKIM_TOOL" field "$1" "$2"; }

# dkim_assert_signed MSG WHAT "d=DOMAIN s=SELECTOR a=ALG"...: MSG (as Postfix relayed it, from
# dkim_capture) carries exactly these DKIM signatures, in any order, as its first header
# fields, followed by Postfix's own Received field (the signatures went in above it); each
# is relaxed/relaxed, covers From at least twice in h= (oversigned: a From added later breaks
# it) and has no l=; and python3-dkim and OpenDKIM both verify every one.
dkim_assert_signed() {
	local msg=$1 what=$2 spec d s a sigs line n h i
	shift 2
	sigs=$(dkim_sigs "$msg")
	n=$#
	if [[ $(grep -c . <<<"$sigs") != "$n" ]]; then
		printf -- '--- signatures found:\n%s\n' "${sigs:-(none)}" | sed 's/^/  > /' >&2
		fail "$what: expected $n DKIM-Signature field(s): $*"
	fi
	for spec in "$@"; do
		d=$(sed -n 's/.*d=\([^ ]*\).*/\1/p' <<<"$spec")
		s=$(sed -n 's/.*s=\([^ ]*\).*/\1/p' <<<"$spec")
		a=$(sed -n 's/.*a=\([^ ]*\).*/\1/p' <<<"$spec")
		line=$(grep -F -- " a=$a d=$d s=$s " <<<"$sigs" || true)
		[[ -n $line ]] || {
			printf -- '--- signatures found:\n%s\n' "$sigs" | sed 's/^/  > /' >&2
			fail "$what: no signature with $spec"
		}
		[[ $line == *" c=relaxed/relaxed "* ]] || fail "$what: $spec is not c=relaxed/relaxed: $line"
		h=$(sed -n 's/.* h=\([^ ]*\).*/\1/p' <<<"$line" | tr 'A-Z:' 'a-z\n')
		(($(grep -cx from <<<"$h") >= 2)) || fail "$what: $spec does not oversign From: $line"
		[[ $line != *" l="* ]] || fail "$what: $spec has an l= tag: $line"
	done
	note "ok: $what: $n signature(s) $*, relaxed/relaxed, From oversigned, no l="
	for ((i = 0; i < n; i++)); do
		[[ $(sed -n "$((i + 1))p" <<<"$sigs") == "pos=$i "* ]] || {
			printf -- '--- header fields:\n%s\n' "$(dkim_fields "$msg" | head -n 8)" | sed 's/^/  > /' >&2
			fail "$what: the signatures are not the first header fields"
		}
	done
	line=$(dkim_field "$msg" "$n")
	[[ $line == Received:*" by mx.mw-test.example (Postfix"* ]] || {
		printf -- '--- header fields:\n%s\n' "$(dkim_fields "$msg" | head -n 8)" | sed 's/^/  > /' >&2
		fail "$what: field $n after the signature(s) is not Postfix's Received: $line"
	}
	note "ok: $what: signature(s) on top, above Postfix's Received field"
	dkim_assert_verified "$msg" "$n" "$what: verifies"
}

# dkim_log_line QID: the milter's decision line for Postfix queue id QID (empty if none).
dkim_log_line() {
	grep -E "milter-warden\[[0-9]+\]: [A-Za-z]+: $1: .*action=" "$MW_LOG" | tail -n 1 || true
}

# dkim_py_sign IN OUT DOMAIN SELECTOR KEYNAME [l]: sign IN with python3-dkim (RSA keys only),
# for variants OpenDKIM does not make: "l" adds an l= tag covering the body as it is now.
dkim_py_sign() {
	dkim_init
	"$PY" "$DKIM_TOOL" py-sign "$1" "$2" "$3" "$4" "$(dkim_key "$5")" "${6:-}" ||
		fail "harness: python3-dkim could not sign $1 for $3 with $5"
}

# ---------------------------------------------------------------- Rate limits, greylisting and Redis
#
# The state behind the rules' ratelimit and greylisted conditions: an embedded LMDB file in
# $T/state, or a real redis-server the test starts on a free port of 127.0.0.1 (no
# persistence: --save '' --appendonly no; run as the redis user when there is one), which it
# can kill, freeze (SIGSTOP: connections are accepted, nothing is answered), thaw and restart
# on the same port. A second milter-warden instance ("B": $MWB_CONF, socket $T/run/mwb.sock,
# pid $MWB_PID) stands behind a second smtpd listener of the private Postfix, so that two
# daemons share one Redis. Both daemons log into $MW_LOG (each line carries its pid), so the
# failure diagnostics show both. Needs the package redis-server (tests/install-deps).
#
#     redis_start                                   # 127.0.0.1:$REDIS_PORT
#     mw_config state_store="redis:127.0.0.1:$REDIS_PORT" rules="$T/limits.rules"
#     mwb_config state_store="redis:127.0.0.1:$REDIS_PORT" rules="$T/limits.rules"
#     pf_listener PORT_B "smtpd_milters=unix:$T/run/mwb.sock"
#     it_start; mwb_start
#     send_port "$PORT_B" --to ...                  # through daemon B
#     redis_kill; ...; redis_restart                # the same port again

REDIS_PORT=
REDIS_PID=
MWB_PID=
MWB_CONF=

# state_lmdb: the path of an embedded store file in $T/state (a root-owned directory, as
# "make install" creates /var/lib/milter-warden: the daemon gives the file to its user).
state_lmdb() {
	install -d -m 0755 "$T/state"
	printf '%s\n' "$T/state/state.mdb"
}

# redis_start: redis-server on 127.0.0.1:$REDIS_PORT (a free port the first time, the same
# port after redis_kill or redis_stop), empty; waits (bounded) until it answers PING. Its pid
# ($REDIS_PID) is stopped by the EXIT trap.
redis_start() {
	local i
	local -a run_as=()
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		fail "redis-server or redis-cli not found; run tests/install-deps"
	fi
	[[ -z $REDIS_PID ]] || ! alive "$REDIS_PID" || fail "harness: redis-server already running"
	[[ -n $REDIS_PORT ]] || REDIS_PORT=$("$PY" "$HARNESS_PY" free-ports 1)
	mkdir -p "$T/redis"
	if getent passwd redis >/dev/null && command -v setpriv >/dev/null; then
		chown redis: "$T/redis"
		run_as=(setpriv --reuid redis --regid redis --init-groups --)
	fi
	"${run_as[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
		--appendonly no --daemonize no --dir "$T/redis" --logfile '' \
		</dev/null >>"$T/log/redis.log" 2>&1 &
	REDIS_PID=$!
	MW_EXTRA_PIDS+=("$REDIS_PID")
	for ((i = 0; i < 100; i++)); do
		if [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; then
			note "redis-server on 127.0.0.1:$REDIS_PORT, pid $REDIS_PID"
			return 0
		fi
		alive "$REDIS_PID" || {
			sed 's/^/  | /' "$T/log/redis.log" | tail -n 20 >&2
			fail "redis-server exited during startup"
		}
		sleep 0.1
	done
	fail "redis-server not answering on 127.0.0.1:$REDIS_PORT after 10s"
}

# redis_cli ARGS...: one redis-cli command against the test's server.
redis_cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# _redis_reap SIGNAL: send SIGNAL to redis-server and wait (bounded) until it is gone.
_redis_reap() {
	[[ -n $REDIS_PID ]] || return 0
	kill -CONT "$REDIS_PID" 2>/dev/null || true
	kill "-$1" "$REDIS_PID" 2>/dev/null || true
	wait_gone "$REDIS_PID" 5 || kill -KILL "$REDIS_PID" 2>/dev/null || true
	wait "$REDIS_PID" 2>/dev/null || true
	alive "$REDIS_PID" && fail "redis-server (pid $REDIS_PID) does not go away"
	REDIS_PID=
}

# redis_kill: SIGKILL, as a crash; redis_stop: SIGTERM, a clean stop. Either way the port
# stays free for redis_restart and everything the server held is lost.
redis_kill() {
	_redis_reap KILL
	note "redis-server killed (SIGKILL)"
}
redis_stop() { _redis_reap TERM; }

# redis_restart: a new, empty redis-server on the same port.
redis_restart() {
	_redis_reap TERM
	redis_start
}

# redis_freeze / redis_thaw: SIGSTOP / SIGCONT the server: while frozen the kernel still
# accepts connections and requests, and nothing answers (a hung or overloaded store).
redis_freeze() {
	alive "$REDIS_PID" || fail "redis-server is not running"
	kill -STOP "$REDIS_PID"
	note "redis-server frozen (SIGSTOP)"
}
redis_thaw() {
	[[ -n $REDIS_PID ]] && kill -CONT "$REDIS_PID" 2>/dev/null
	note "redis-server thawed (SIGCONT)"
}

# mwb_config [key=value]...: write $MWB_CONF ($T/mwb.conf), the configuration of the second
# daemon: the harness defaults with its own socket and pidfile, plus the overrides.
mwb_config() {
	MWB_CONF=$T/mwb.conf
	MW_CONF=$MWB_CONF mw_config "socket=unix:$T/run/mwb.sock" "pidfile=$T/run/mwb.pid" "$@"
}

# mwb_start [args...]: start the second daemon on $MWB_CONF (mwb_config first) and wait
# (bounded) until it logs "ready"; its pid is $MWB_PID, stopped by the EXIT trap.
mwb_start() {
	local mark i rc
	[[ -n $MWB_CONF ]] || fail "harness: mwb_config before mwb_start"
	mark=$(log_mark "$MW_LOG")
	mw_spawn "$MWB_CONF" "$MW_LOG" "$@"
	MWB_PID=$SPAWNED_PID
	MW_EXTRA_PIDS+=("$MWB_PID")
	for ((i = 0; i < 100 * SCALE; i++)); do
		if log_since "$MW_LOG" "$mark" | grep -Eq "milter-warden\[$MWB_PID\]: [A-Za-z]+: ready\b"; then
			note "second milter-warden running, pid $MWB_PID"
			return 0
		fi
		if ! alive "$MWB_PID"; then
			rc=0
			wait "$MWB_PID" || rc=$?
			MWB_PID=
			fail "second milter-warden exited during startup with status $rc"
		fi
		sleep 0.1
	done
	fail "second milter-warden did not get ready within $((10 * SCALE))s"
}

# mwb_stop: SIGTERM the second daemon and require exit status 0.
mwb_stop() {
	local rc=0
	alive "$MWB_PID" || fail "second milter-warden (pid ${MWB_PID:-none}) is not running"
	kill -TERM "$MWB_PID"
	wait_gone "$MWB_PID" $((20 * SCALE)) || fail "second milter-warden still running 20s after SIGTERM"
	wait "$MWB_PID" || rc=$?
	MWB_PID=
	assert_eq "$rc" 0 "second milter-warden exit status after SIGTERM"
}

# mw_restart: stop the daemon (SIGTERM, exit status 0) and start it again on the same
# configuration: what it remembers across the restart is what its store kept.
mw_restart() {
	mw_stop
	mw_start "$@"
}

# now_ms: the wall clock in milliseconds (to time one SMTP session).
now_ms() { echo $(($(date +%s%N) / 1000000)); }
