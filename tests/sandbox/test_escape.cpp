// Escape suite: every test makes a real command try to get out of the sandbox and checks, from the
// host, that it did not (files unchanged, listeners silent, no surviving processes). Where a check
// could pass vacuously, a positive control (same attempt with the layer switched off) shows it can fail.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/sandbox/sandbox_fixture.h"

namespace m1::sandbox::testing {
namespace {

TEST_F(SandboxTest, WritesOutsideTheWorkspaceFail) {
  const fs::path targets[] = {"/etc/m1-escape", "/usr/m1-escape", home / "m1-escape", base / "m1-escape",
                              "/m1-escape", "/var/tmp/m1-escape"};
  for (const auto& t : targets) {
    auto r = run_sh("echo pwned > '" + t.string() + "'");
    EXPECT_NE(r.exit_code, 0) << t;
    EXPECT_FALSE(fs::exists(t)) << t << " was written on the host";
  }
  auto r = run_sh("echo pwned > ../m1-escape-rel; mkdir ../m1-dir; touch ../../m1-escape2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(fs::exists(base / "m1-escape-rel"));
  EXPECT_FALSE(fs::exists(base / "m1-dir"));
  EXPECT_FALSE(fs::exists(base.parent_path() / "m1-escape2"));
  // Deleting and renaming outside is refused too.
  spit(base / "keep", "keep");
  r = run_sh("rm -f ../keep; mv ../keep ./moved");
  EXPECT_EQ(slurp(base / "keep"), "keep");  // mv may copy it in (reads are allowed) but not remove it
}

TEST_F(SandboxTest, HomeAndRootAreHidden) {
  fs::path secret = home / ("m1-sandbox-secret-" + std::to_string(getpid()));
  spit(secret, "TOPSECRET-42");
  auto r = run_sh("cat '" + secret.string() + "'; ls -a '" + home.string() + "' /root; echo end");
  fs::remove(secret);
  EXPECT_EQ(r.output.find("TOPSECRET-42"), std::string::npos) << r.output;
  std::string as_ls_entry = secret.filename().string();  // ls prints the bare name on its own line
  as_ls_entry.insert(0, 1, '\n');
  as_ls_entry.push_back('\n');
  EXPECT_EQ(r.output.find(as_ls_entry), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("No such file"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("end"), std::string::npos);
}

TEST_F(SandboxTest, PolicyHiddenPathsAreInvisibleAndUnwritable) {
  fs::path dir = base / "secrets";
  fs::create_directories(dir);
  spit(dir / "key", "HIDDEN-KEY");
  spit(base / "token", "HIDDEN-TOKEN");
  Policy p = policy();
  p.hidden = {dir, base / "token"};
  auto r = run_sh("cat ../secrets/key ../token; ls ../secrets; echo x > ../secrets/new; echo end", p);
  EXPECT_EQ(r.output.find("HIDDEN-"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "new"));
  // Positive control: without `hidden`, the same command reads them.
  r = run_sh("cat ../secrets/key ../token");
  EXPECT_NE(r.output.find("HIDDEN-KEY"), std::string::npos) << r.output;
}

// A listener on the host that counts connections and datagrams.
struct Listener {
  int tcp = -1, udp = -1;
  int tcp_port = 0, udp_port = 0;
  Listener() {
    tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(tcp, 16);
    getsockname(tcp, reinterpret_cast<sockaddr*>(&a), &len);
    tcp_port = ntohs(a.sin_port);
    a.sin_port = 0;
    bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(udp, reinterpret_cast<sockaddr*>(&a), &len);
    udp_port = ntohs(a.sin_port);
  }
  ~Listener() {
    close(tcp);
    close(udp);
  }
  int events() {
    int n = 0;
    for (int c; (c = accept(tcp, nullptr, nullptr)) >= 0; ++n) close(c);
    char buf[64];
    while (recv(udp, buf, sizeof buf, 0) >= 0) ++n;
    return n;
  }
};

std::string net_script(const Listener& l) {
  std::string tp = std::to_string(l.tcp_port), up = std::to_string(l.udp_port);
  return "import socket\n"
         "ok = 0\n"
         "try:\n"
         "  s = socket.create_connection(('127.0.0.1', " + tp + "), timeout=2); s.send(b'x'); ok += 1\n"
         "except OSError as e: print('tcp:', e)\n"
         "try:\n"
         "  u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'x', ('127.0.0.1', " + up + ")); ok += 1\n"
         "except OSError as e: print('udp:', e)\n"
         "try:\n"
         "  s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); ok += 1\n"
         "except OSError as e: print('inet6:', e)\n"
         "a, b = socket.socketpair(); a.send(b'u'); print('unix:', b.recv(1))\n"
         "print('reached', ok)\n";
}

TEST_F(SandboxTest, NetworkIsOffByDefault) {
  if (!have("python3")) GTEST_SKIP() << "python3 not installed";
  Listener l;
  spit(ws / "net.py", net_script(l));
  auto r = run_sh("python3 net.py");
  EXPECT_NE(r.output.find("reached 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unix: b'u'"), std::string::npos) << r.output;  // AF_UNIX still works
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(l.events(), 0);
  // Shell-level attempts: bash's /dev/tcp, and the only interface is a down loopback.
  if (have("bash")) {
    r = run_sh("bash -c 'echo x > /dev/tcp/127.0.0.1/" + std::to_string(l.tcp_port) + "'");
    EXPECT_NE(r.exit_code, 0);
  }
  r = run_sh("cat /proc/net/dev");
  EXPECT_EQ(r.output.find("eth"), std::string::npos) << r.output;
  EXPECT_EQ(l.events(), 0);
}

TEST_F(SandboxTest, NetworkPolicyOnReachesTheListener) {  // positive control for the test above
  if (!have("python3")) GTEST_SKIP() << "python3 not installed";
  Listener l;
  spit(ws / "net.py", net_script(l));
  Policy p = policy();
  p.network = true;
  auto r = run_sh("python3 net.py", p);
  EXPECT_NE(r.output.find("reached 3"), std::string::npos) << r.output;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_GE(l.events(), 2);
}

TEST_F(SandboxTest, HostServiceSocketsInRunAreHidden) {
  if (!have("python3")) GTEST_SKIP() << "python3 not installed";
  fs::path path = "/run/m1-sandbox-test-" + std::to_string(getpid()) + ".sock";
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(s, 4), 0);
  std::string script = "python3 -c \"import socket; c=socket.socket(socket.AF_UNIX); c.connect('" + path.string() +
                       "'); print('CONNECTED')\"";
  auto r = run_sh(script);
  EXPECT_EQ(r.output.find("CONNECTED"), std::string::npos) << r.output;
  Policy off = policy();
  off.mode = Mode::Off;  // positive control: unconfined, the same script connects
  r = run_sh(script, off);
  EXPECT_NE(r.output.find("CONNECTED"), std::string::npos) << r.output;
  close(s);
  fs::remove(path);
}

TEST_F(SandboxTest, PtraceAndProcessMemoryAreDenied) {
  auto r = run_sh("sleep 5 & pid=$!; cat /proc/$pid/mem > /dev/null && echo MEM-READ; "
                  "cat /proc/$pid/environ > /dev/null && echo ENV-READ; echo done");
  EXPECT_NE(r.output.find("done"), std::string::npos);
  EXPECT_EQ(r.output.find("MEM-READ"), std::string::npos) << r.output;
  if (have("strace")) {
    r = run_sh("strace -f true");
    EXPECT_NE(r.exit_code, 0) << r.output;
  }
  if (have("python3")) {
    r = run_sh("sleep 5 & python3 -c \"import ctypes,sys; libc=ctypes.CDLL(None, use_errno=True); "
               "print('attach', libc.ptrace(16, int(sys.argv[1]), 0, 0), ctypes.get_errno()); "
               "print('traceme', libc.ptrace(0, 0, 0, 0))\" $!");
    EXPECT_NE(r.output.find("attach -1 1"), std::string::npos) << r.output;  // EPERM
    EXPECT_NE(r.output.find("traceme -1"), std::string::npos) << r.output;
  }
}

TEST_F(SandboxTest, ForkBombIsBoundedAndCleanedUp) {
  Policy p = policy();
  p.timeout_s = 3;
  auto start = std::chrono::steady_clock::now();
  auto r = run_sh("bomb() { bomb | bomb & }; bomb; sleep 1000.811", p);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(secs, 15);
  EXPECT_EQ(host_processes_with("1000.811"), 0);
  // The number of live tasks is capped (pid_max of the pid namespace, or RLIMIT_NPROC).
  p.timeout_s = 30;
  // Counting with a glob, not `ls`: once the cap is reached the shell itself cannot fork.
  r = run_sh("(i=0; while [ $i -lt 600 ]; do sleep 1000.812 & i=$((i+1)); done) 2>/dev/null; "
             "set -- /proc/[0-9]*; echo $#", p);
  int live = std::atoi(r.output.substr(r.output.rfind('\n', r.output.size() - 2) + 1).c_str());
  EXPECT_GT(live, 10) << r.output << " exit " << r.exit_code << " sig " << r.term_signal;
  EXPECT_LE(live, 301) << r.output;
  EXPECT_EQ(host_processes_with("1000.812"), 0);
}

TEST_F(SandboxTest, OrphanedBackgroundProcessesDoNotSurvive) {
  auto r = run_sh("(sleep 1; echo survived > marker) & sleep 1000.733 & echo started");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_LT(r.wall_seconds, 10.0);  // did not wait for the 1000 s sleep (generous: CI may be loaded)
  EXPECT_EQ(host_processes_with("1000.733"), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE(fs::exists(ws / "marker"));
  // setsid/nohup do not help either: the whole pid namespace goes.
  r = run_sh("setsid sleep 1000.734 & nohup sleep 1000.735 > /dev/null 2>&1 & echo ok");
  EXPECT_EQ(host_processes_with("1000.734"), 0);
  EXPECT_EQ(host_processes_with("1000.735"), 0);
}

TEST_F(SandboxTest, SymlinksDoNotLeadOut) {
  std::string passwd = slurp("/etc/passwd");
  fs::create_symlink("/etc/passwd", ws / "to-passwd");
  fs::create_symlink(home, ws / "to-home");
  fs::create_symlink(base, ws / "to-parent");
  auto r = run_sh("echo x >> to-passwd; echo x > to-home/m1-link-escape; echo x > to-parent/m1-link-escape; "
                  "ln -s /etc/hostname mine; echo x > mine; ln /etc/passwd hard; echo end");
  EXPECT_NE(r.output.find("end"), std::string::npos);
  EXPECT_EQ(slurp("/etc/passwd"), passwd);
  EXPECT_FALSE(fs::exists(home / "m1-link-escape"));
  EXPECT_FALSE(fs::exists(base / "m1-link-escape"));
  EXPECT_FALSE(fs::exists(ws / "hard"));
  // A symlinked workspace is resolved on the host: the real directory is what becomes writable.
  fs::create_symlink(ws, base / "ws-link");
  Policy p = policy();
  p.workspace = base / "ws-link";
  r = run_sh("echo ok > via-link && pwd", p);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(slurp(ws / "via-link"), "ok\n");
}

TEST_F(SandboxTest, ProcDoesNotLeadOut) {
  std::string host_pid = std::to_string(getpid());
  auto r = run_sh("echo x > /proc/self/root/etc/m1-proc-escape; echo x > /proc/1/root/etc/m1-proc-escape; "
                  "echo 3 > /proc/sys/vm/drop_caches && echo DROP; echo hacked > /proc/" + host_pid +
                  "/comm; echo c > /proc/sysrq-trigger && echo SYSRQ; ls /proc | grep -c '^[0-9]'");
  EXPECT_FALSE(fs::exists("/etc/m1-proc-escape"));
  EXPECT_EQ(r.output.find("DROP"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("SYSRQ"), std::string::npos) << r.output;
  EXPECT_NE(slurp("/proc/self/comm"), "hacked\n");
  int pids = std::atoi(r.output.substr(r.output.rfind('\n', r.output.size() - 2) + 1).c_str());
  EXPECT_GE(pids, 1);
  EXPECT_LE(pids, 5) << "the command sees host processes:\n" << r.output;
}

TEST_F(SandboxTest, MountAndUnshareAreDenied) {
  fs::create_directories(ws / "m");
  fs::path secret = home / ("m1-sandbox-mount-" + std::to_string(getpid()));
  spit(secret, "UNDER-THE-COVER");
  auto r = run_sh("mount -t tmpfs none m && echo MOUNTED; umount '" + home.string() + "' && echo UMOUNTED; "
                  "cat '" + secret.string() + "'; unshare -U -r true && echo USERNS; unshare -m true && echo MNTNS; "
                  "unshare -n true && echo NETNS; unshare -p -f true && echo PIDNS; echo end");
  fs::remove(secret);
  EXPECT_NE(r.output.find("end"), std::string::npos) << r.output;
  for (const char* bad : {"MOUNTED", "UMOUNTED", "UNDER-THE-COVER", "USERNS", "MNTNS", "NETNS", "PIDNS"})
    EXPECT_EQ(r.output.find(bad), std::string::npos) << bad << "\n" << r.output;
}

TEST_F(SandboxTest, GitDirectoryReadOnlyWhenAsked) {
  fs::create_directories(ws / ".git");
  spit(ws / ".git" / "HEAD", "ref: refs/heads/main\n");
  Policy p = policy();
  p.git_readonly = true;
  auto r = run_sh("echo evil > .git/HEAD; touch .git/new; rm -f .git/HEAD; echo fine > work.txt", p);
  EXPECT_EQ(slurp(ws / ".git" / "HEAD"), "ref: refs/heads/main\n");
  EXPECT_FALSE(fs::exists(ws / ".git" / "new"));
  EXPECT_EQ(slurp(ws / "work.txt"), "fine\n");
  r = run_sh("echo ok > .git/new");  // default: writable
  EXPECT_EQ(slurp(ws / ".git" / "new"), "ok\n");
}

TEST_F(SandboxTest, LayersAreActiveInsideTheCommand) {
  auto r = run_sh("grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' /proc/self/status; hostname");
  EXPECT_NE(r.output.find("NoNewPrivs:\t1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Seccomp:\t2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("CapEff:\t0000000000000000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("CapBnd:\t0000000000000000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("m1-sandbox"), std::string::npos) << r.output;
}

// Landlock is a second layer, so most escapes are stopped twice. Signalling the sandbox's init (same
// uid, same pid namespace) is something only Landlock's signal scope (ABI 6) refuses: it shows the
// Landlock domain really is in force. Unconfined, the same check succeeds.
TEST_F(SandboxTest, LandlockDomainIsInForce) {
  auto r = run_sh("kill -0 1 && echo INIT-SIGNALABLE; echo end");
  EXPECT_NE(r.output.find("end"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("INIT-SIGNALABLE"), std::string::npos) << r.output;
  Policy off = policy();
  off.mode = Mode::Off;
  r = run_sh("kill -0 $$ && echo SELF-SIGNALABLE", off);
  EXPECT_NE(r.output.find("SELF-SIGNALABLE"), std::string::npos) << r.output;
}

TEST_F(SandboxTest, DevIsMinimal) {
  auto r = run_sh("ls /dev; echo x > /dev/null && echo NULL-OK; head -c 4 /dev/urandom | wc -c; "
                  "echo x > /dev/m1-new; ls /dev/sda /dev/vda /dev/mem /dev/kmsg 2>&1 | grep -c 'No such'");
  EXPECT_NE(r.output.find("NULL-OK"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\n4\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\n4\n"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("vda\n"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists("/dev/m1-new"));
}

}  // namespace
}  // namespace m1::sandbox::testing
