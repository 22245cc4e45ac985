package devagent

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a process that starts a Consul
// agent, prints the agent's PID and then waits to be killed.
const helperEnv = "BERTH_DEVAGENT_TEST_HELPER"

func init() {
	if os.Getenv(helperEnv) == "" {
		return
	}
	consul.once.Do(func() { consul.start(startConsul) })
	if consul.skip != "" || consul.err != nil {
		fmt.Printf("error: %s%v\n", consul.skip, consul.err)
		os.Exit(1)
	}
	fmt.Printf("pid %d\n", consul.cmd.Process.Pid)
	time.Sleep(time.Minute)
	os.Exit(0)
}

// An agent must not outlive a test binary that dies without cleaning up.
func TestAgentDiesWithTestBinary(t *testing.T) {
	Consul(t) // skips when the binary is missing
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(exe, "-test.run=^$")
	// The helper is killed before it can clean up: its agent directory goes
	// in a TMPDIR the test removes.
	helper.Env = append(cleanEnv(), helperEnv+"=1", "HOME="+t.TempDir(), "TMPDIR="+t.TempDir(), "BERTH_CONSUL_BIN="+BinaryPath("consul"))
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "pid ") {
		_ = helper.Process.Kill()
		_ = helper.Wait()
		t.Fatalf("helper said %q, %v; want the agent's pid", line, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("agent pid %d not running before the kill: %v", pid, err)
	}
	_ = helper.Process.Kill() // SIGKILL: no cleanup runs in the helper
	_ = helper.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for {
		// The agent is the helper's child, reparented on its death; it is
		// gone (or a zombie about to be reaped) once it has died.
		if !alive(pid) {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("agent pid %d still running 15s after its test binary was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Field 3, after the parenthesised command name, is the state.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
