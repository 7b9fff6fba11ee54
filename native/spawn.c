// distrun_spawn: start a command without forking the agent.
//
// libuv (Node 20) creates a child with fork(), which copies the page tables of the whole
// agent (V8 reserves gigabytes): milliseconds per command, on the event loop, growing with
// the agent's memory. Here the child is made with clone(CLONE_VM | CLONE_VFORK), as glibc's
// posix_spawn does: it borrows the agent's memory until it executes the program, so the
// cost does not depend on the agent's size. posix_spawn itself cannot enter a cgroup, and
// the child must; the child's steps are therefore written out here, each one an
// async-signal-safe system call on memory prepared by the parent beforehand.
//
// The agent learns of the child's end through a pidfd (Linux 5.3) watched by the event
// loop; libuv reaps only children it started itself, so these are reaped here.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <fcntl.h>
#include <node_api.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <grp.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define CHILD_STACK_BYTES (64 * 1024)
#define MAX_FDS 8
#define MAX_GROUPS 65536

// The steps the child takes, named in the error when one fails. "cwd", "notfound" and
// "noexec" are the words of the launcher shell that the fallback path runs
// (src/agent/command-launch.ts), so the agent reports both paths' failures alike.
enum step { STEP_NONE, STEP_SIGNALS, STEP_SETSID, STEP_CGROUP, STEP_FDS, STEP_CREDENTIALS, STEP_CWD, STEP_NOTFOUND, STEP_NOEXEC, STEP_EXEC };
static const char *const step_names[] = {"", "signals", "setsid", "cgroup", "descriptors", "credentials", "cwd", "notfound", "noexec", "exec"};
// The shell's exit codes for each, should anyone see the child's status.
static const int step_codes[] = {0, 127, 127, 126, 127, 126, 126, 127, 126, 126};

struct child_args {
  const char *file;  // the program: a path, or a name looked up in `search`
  char **argv;       // argv[0] is replaced by the path found
  char **envp;       // with two free slots at `envc`, for PWD and OLDPWD
  int envc;
  int fds[MAX_FDS];  // the child's descriptor i becomes fds[i]; -1: /dev/null
  int nfds;
  const char *cgroup_procs;  // NULL: stay in the agent's cgroup
  int switch_user;           // take on uid, gid and groups
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  int ngroups;
  const char *cwd;     // NULL: `home`, else /
  const char *home;    // NULL: /
  const char *search;  // PATH
  // Written by the child when a step fails (the parent is suspended until the child has
  // executed the program or exited: CLONE_VFORK).
  int failed_step;
  int failed_errno;
};

static int child_fail(struct child_args *a, enum step step) {
  a->failed_step = step;
  a->failed_errno = errno;
  _exit(step_codes[step]);
}

// A regular file that the (new) user may execute, as the shell's [ -f ] && [ -x ] test it.
static int executable_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

// The program's path as the launcher shell finds it: a name with a slash as it is, else
// the first regular executable file of that name in a non-empty PATH entry. Into `found`.
static void find_program(struct child_args *a, char *found, size_t size) {
  const char *name = a->file;
  if (strchr(name, '/')) {
    struct stat st;
    if (strlen(name) >= size) {
      errno = ENAMETOOLONG;
      child_fail(a, STEP_NOTFOUND);
    }
    strcpy(found, name);
    if (stat(found, &st) != 0) child_fail(a, STEP_NOTFOUND);
    if (!executable_file(found)) child_fail(a, STEP_NOEXEC);
    return;
  }
  size_t name_length = strlen(name);
  for (const char *dir = a->search; dir && *dir;) {
    const char *end = strchrnul(dir, ':');
    size_t dir_length = (size_t)(end - dir);
    if (dir_length > 0 && dir_length + 1 + name_length < size) {
      memcpy(found, dir, dir_length);
      found[dir_length] = '/';
      memcpy(found + dir_length + 1, name, name_length + 1);
      if (executable_file(found)) return;
    }
    dir = *end ? end + 1 : end;
  }
  errno = ENOENT;
  child_fail(a, STEP_NOTFOUND);
}

static int child_main(void *arg) {
  struct child_args *a = arg;
  // The agent's handlers mean nothing here, and its ignored signals (SIGPIPE) must not be
  // ignored by the command: every signal goes back to its default, then none is blocked.
  for (int s = 1; s < NSIG; s++) {
    if (s == SIGKILL || s == SIGSTOP) continue;
    struct sigaction old;
    if (sigaction(s, NULL, &old) != 0) continue;  // glibc's own (SIGCANCEL, SIGSETXID)
    if (old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) continue;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    if (sigaction(s, &dfl, NULL) != 0) child_fail(a, STEP_SIGNALS);
  }
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) child_fail(a, STEP_SIGNALS);
  // Its own session and process group: the agent signals the group as a whole.
  if (setsid() < 0) child_fail(a, STEP_SETSID);
  if (a->cgroup_procs) {
    int fd = open(a->cgroup_procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) child_fail(a, STEP_CGROUP);
    // "0": the writing process itself.
    if (write(fd, "0\n", 2) != 2) child_fail(a, STEP_CGROUP);
    close(fd);
  }
  // Descriptors: first every source out of the way of the targets (above all of them),
  // then each onto its place (dup2 clears close-on-exec there), then nothing else open.
  int moved[MAX_FDS];
  for (int i = 0; i < a->nfds; i++) {
    int source = a->fds[i];
    if (source < 0) source = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (source < 0) child_fail(a, STEP_FDS);
    moved[i] = fcntl(source, F_DUPFD_CLOEXEC, a->nfds);
    if (moved[i] < 0) child_fail(a, STEP_FDS);
  }
  for (int i = 0; i < a->nfds; i++) {
    if (dup2(moved[i], i) < 0) child_fail(a, STEP_FDS);
  }
  if (syscall(SYS_close_range, (unsigned)a->nfds, ~0U, 0) != 0) {
    // Before Linux 5.9: one by one (everything the agent opens is close-on-exec anyway).
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = a->nfds; fd < max; fd++) close((int)fd);
  }
  // The user: groups first, then the gid, then the uid (after which nothing else may change).
  if (a->switch_user) {
    if (syscall(SYS_setgroups, (size_t)a->ngroups, a->groups) != 0) child_fail(a, STEP_CREDENTIALS);
    if (syscall(SYS_setresgid, a->gid, a->gid, a->gid) != 0) child_fail(a, STEP_CREDENTIALS);
    if (syscall(SYS_setresuid, a->uid, a->uid, a->uid) != 0) child_fail(a, STEP_CREDENTIALS);
  }
  // As the user: the client's directory (relative to /), else the home, else /. The shell's
  // `cd -P` exports PWD (where it is, symbolic links resolved) and OLDPWD (/): so here.
  if (chdir("/") != 0) child_fail(a, STEP_CWD);
  if (a->cwd) {
    if (chdir(a->cwd) != 0) child_fail(a, STEP_CWD);
  } else if (a->home && chdir(a->home) != 0 && chdir("/") != 0) {
    child_fail(a, STEP_CWD);
  }
  char pwd[PATH_MAX + 8] = "PWD=";
  if (getcwd(pwd + 4, sizeof pwd - 4) != NULL) a->envp[a->envc++] = pwd;
  static char oldpwd[] = "OLDPWD=/";
  a->envp[a->envc++] = oldpwd;
  char found[PATH_MAX];
  find_program(a, found, sizeof found);
  a->argv[0] = found;
  execve(found, a->argv, a->envp);
  // No #! line and no ELF header: a shell script, as the shell (and execvp) run it.
  if (errno == ENOEXEC) {
    a->argv[-1] = (char *)"/bin/sh";
    execve("/bin/sh", a->argv - 1, a->envp);
  }
  // A #! naming a missing interpreter is "not found" to a shell; a mount without exec, "denied".
  if (errno == ENOENT) child_fail(a, STEP_NOTFOUND);
  if (errno == EACCES || errno == EPERM) child_fail(a, STEP_NOEXEC);
  return child_fail(a, STEP_EXEC);
}

// ---- N-API helpers -------------------------------------------------------------------

#define CHECK(call)                                   \
  do {                                                \
    if ((call) != napi_ok) {                          \
      napi_throw_error(env, NULL, "napi: " #call);    \
      return NULL;                                    \
    }                                                 \
  } while (0)

// Throws an Error "WHAT: strerror" with errno, code (ENOENT, ...) and step (which step
// failed: "exec", "cgroup", "pipe2", ...), so callers tell failures apart without parsing text.
static napi_value errno_error(napi_env env, const char *step, const char *what, int err) {
  napi_value message, error, number, name, which;
  char text[256];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_create_int32(env, err, &number);
  napi_set_named_property(env, error, "errno", number);
  const char *code = strerrorname_np(err);
  if (code) {
    napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &name);
    napi_set_named_property(env, error, "code", name);
  }
  napi_create_string_utf8(env, step, NAPI_AUTO_LENGTH, &which);
  napi_set_named_property(env, error, "step", which);
  napi_throw(env, error);
  return NULL;
}

// A JS string as a malloc'd C string (NUL bytes inside are refused: they cannot be exec'd).
static char *string_of(napi_env env, napi_value value) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char *s = malloc(length + 1);
  if (!s) return NULL;
  napi_get_value_string_utf8(env, value, s, length + 1, &length);
  if (strlen(s) != length) {
    free(s);
    return NULL;
  }
  return s;
}

// Frees the strings of a NULL-terminated array (not the array).
static void free_strings(char **list) {
  if (!list) return;
  for (char **p = list; *p; p++) free(*p);
}

// A JS array of strings as a NULL-terminated C array, with `before` empty slots ahead of
// the strings and `after` more NULLs behind them.
static char **strings_of(napi_env env, napi_value array, uint32_t before, uint32_t after) {
  uint32_t n;
  if (napi_get_array_length(env, array, &n) != napi_ok) return NULL;
  char **list = calloc(before + n + 1 + after, sizeof *list);
  if (!list) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    if (napi_get_element(env, array, i, &item) != napi_ok || !(list[before + i] = string_of(env, item))) {
      free_strings(list + before);
      free(list);
      return NULL;
    }
  }
  return list;
}

// ---- the child's end ---------------------------------------------------------------

struct watch {
  uv_poll_t poll;
  napi_env env;
  napi_ref on_exit;
  napi_async_context context;
  pid_t pid;
  int pidfd;
};

static void watch_closed(uv_handle_t *handle) {
  struct watch *w = handle->data;
  close(w->pidfd);
  free(w);
}

static void child_exited(uv_poll_t *poll, int status, int events) {
  (void)status;
  (void)events;
  struct watch *w = poll->data;
  int wstatus;
  pid_t got = waitpid(w->pid, &wstatus, WNOHANG);
  if (got == 0) return;  // not yet (spurious wake-up)
  uv_poll_stop(poll);
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback, global, args[2], result;
  int code = -1, signal = 0;
  if (got == w->pid && WIFEXITED(wstatus)) code = WEXITSTATUS(wstatus);
  else if (got == w->pid && WIFSIGNALED(wstatus)) signal = WTERMSIG(wstatus);
  else signal = SIGKILL;  // reaped by someone else: nothing better to say
  napi_create_int32(env, code, &args[0]);
  napi_create_int32(env, signal, &args[1]);
  napi_get_reference_value(env, w->on_exit, &callback);
  napi_get_global(env, &global);
  napi_make_callback(env, w->context, global, callback, 2, args, &result);
  napi_delete_reference(env, w->on_exit);
  napi_async_destroy(env, w->context);
  napi_close_handle_scope(env, scope);
  uv_close((uv_handle_t *)poll, watch_closed);
}

// options[name] as a malloc'd C string; NULL when absent. Sets *bad for a non-string or a NUL byte.
static char *optional_string(napi_env env, napi_value options, const char *name, int *bad) {
  bool has = false;
  napi_value value;
  napi_valuetype type;
  if (napi_has_named_property(env, options, name, &has) != napi_ok || !has) return NULL;
  if (napi_get_named_property(env, options, name, &value) != napi_ok || napi_typeof(env, value, &type) != napi_ok) {
    *bad = 1;
    return NULL;
  }
  if (type == napi_undefined || type == napi_null) return NULL;
  char *s = type == napi_string ? string_of(env, value) : NULL;
  if (!s) *bad = 1;
  return s;
}

static uint32_t required_uint(napi_env env, napi_value object, const char *name, int *bad) {
  napi_value value;
  uint32_t n = 0;
  if (napi_get_named_property(env, object, name, &value) != napi_ok || napi_get_value_uint32(env, value, &n) != napi_ok) *bad = 1;
  return n;
}

// The user's groups as initgroups(3) would set them (NSS), its primary gid included;
// NULL with errno set (ENOMEM, or E2BIG for more than MAX_GROUPS).
static gid_t *groups_of(const char *user, gid_t gid, int *count) {
  int n = 64;
  for (;;) {
    gid_t *groups = malloc((size_t)n * sizeof *groups);
    if (!groups) return NULL;
    int got = n;
    if (getgrouplist(user, gid, groups, &got) >= 0) {
      *count = got;
      return groups;
    }
    free(groups);
    if (got <= n || got > MAX_GROUPS) {
      errno = E2BIG;
      return NULL;
    }
    n = got;
  }
}

// spawn(file, argv, envp, fds, options, onExit(code, signal)) -> pid
// options: { cgroupProcs?, user?: { name, uid, gid }, cwd?, home?, path? }
static napi_value spawn_command(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "spawn(file, argv, envp, fds, options, onExit)");
    return NULL;
  }
  struct child_args a;
  memset(&a, 0, sizeof a);
  int bad = 0;
  char *file = string_of(env, argv[0]);
  // One slot before argv (for /bin/sh, should the program be a script without #!) and
  // two after envp (PWD, OLDPWD), both filled by the child.
  char **args = strings_of(env, argv[1], 1, 0);
  char **envp = strings_of(env, argv[2], 0, 2);
  napi_value options = argv[4];
  char *cgroup = optional_string(env, options, "cgroupProcs", &bad);
  char *cwd = optional_string(env, options, "cwd", &bad);
  char *home = optional_string(env, options, "home", &bad);
  char *search = optional_string(env, options, "path", &bad);
  char *user = NULL;
  gid_t *groups = NULL;
  bool has_user = false;
  napi_has_named_property(env, options, "user", &has_user);
  if (has_user) {
    napi_value who;
    napi_get_named_property(env, options, "user", &who);
    user = optional_string(env, who, "name", &bad);
    a.uid = required_uint(env, who, "uid", &bad);
    a.gid = required_uint(env, who, "gid", &bad);
    if (!user) bad = 1;
    a.switch_user = 1;
  }
  uint32_t nfds = 0;
  napi_get_array_length(env, argv[3], &nfds);
  bad = bad || !file || !args || !envp || nfds > MAX_FDS || !args[1];
  for (uint32_t i = 0; !bad && i < nfds; i++) {
    napi_value item;
    napi_get_element(env, argv[3], i, &item);
    if (napi_get_value_int32(env, item, &a.fds[i]) != napi_ok) bad = 1;
  }
  napi_value result = NULL;
  if (bad) {
    napi_throw_type_error(env, NULL, "spawn: arguments must be strings without NUL bytes, argv not empty, and at most 8 descriptors");
    goto done;
  }
  if (a.switch_user && !(groups = groups_of(user, a.gid, &a.ngroups))) {
    result = errno_error(env, "credentials", "spawn: the groups of the run-as user", errno);
    goto done;
  }
  a.file = file;
  a.argv = args + 1;
  a.envp = envp;
  for (a.envc = 0; envp[a.envc]; a.envc++) continue;
  int envc = a.envc;
  char *program = a.argv[0];
  a.nfds = (int)nfds;
  a.cgroup_procs = cgroup;
  a.groups = groups;
  a.cwd = cwd;
  a.home = home;
  a.search = search;

  char *stack = malloc(CHILD_STACK_BYTES);
  if (!stack) {
    result = errno_error(env, "memory", "spawn", ENOMEM);
    goto done;
  }
  // No signal handler of the agent may run in the child while it shares the agent's memory.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pid_t pid = clone(child_main, stack + CHILD_STACK_BYTES, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  free(stack);
  // What the child put into the parent's arrays pointed into its own stack, now gone.
  args[0] = NULL;
  args[1] = program;
  envp[envc] = envp[envc + 1] = NULL;
  if (pid < 0) {
    result = errno_error(env, "clone", "spawn: clone", clone_errno);
    goto done;
  }
  if (a.failed_step != STEP_NONE) {
    waitpid(pid, NULL, 0);
    char what[64];
    snprintf(what, sizeof what, "spawn: %s", step_names[a.failed_step]);
    result = errno_error(env, step_names[a.failed_step], what, a.failed_errno);
    goto done;
  }
  // The child runs its program now. It cannot be reaped by anyone but us before this
  // (libuv waits only for its own children), so the pidfd is the child's.
  struct watch *w = calloc(1, sizeof *w);
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  uv_loop_t *loop;
  if (!w || pidfd < 0 || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &w->poll, pidfd) != 0) {
    int err = pidfd < 0 ? errno : ENOMEM;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (pidfd >= 0) close(pidfd);
    free(w);
    result = errno_error(env, "pidfd_open", "spawn: pidfd_open", err);
    goto done;
  }
  w->poll.data = w;
  w->env = env;
  w->pid = pid;
  w->pidfd = pidfd;
  napi_value resource_name;
  napi_create_string_utf8(env, "distrun.command", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &w->context);
  napi_create_reference(env, argv[5], 1, &w->on_exit);
  uv_poll_start(&w->poll, UV_READABLE, child_exited);
  napi_create_int32(env, pid, &result);

done:
  free(file);
  free_strings(args ? args + 1 : NULL);
  free(args);
  free_strings(envp);
  free(envp);
  free(cgroup);
  free(cwd);
  free(home);
  free(search);
  free(user);
  free(groups);
  return result;
}

// pipe() -> [readFd, writeFd], both close-on-exec; `nonblocking` ("read" or "write"):
// the agent's end, which its event loop uses; the command's end stays blocking.
static napi_value make_pipe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char which[8] = "";
  size_t length;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], which, sizeof which, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "pipe('read' | 'write')");
    return NULL;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return errno_error(env, "pipe2", "pipe2", errno);
  int agent_end = strcmp(which, "read") == 0 ? fds[0] : fds[1];
  int flags = fcntl(agent_end, F_GETFL);
  if (flags < 0 || fcntl(agent_end, F_SETFL, flags | O_NONBLOCK) != 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    return errno_error(env, "fcntl", "fcntl", err);
  }
  napi_value result, r, w;
  napi_create_array_with_length(env, 2, &result);
  napi_create_int32(env, fds[0], &r);
  napi_create_int32(env, fds[1], &w);
  napi_set_element(env, result, 0, r);
  napi_set_element(env, result, 1, w);
  return result;
}

// setPipeSize(fd, bytes) -> the size the kernel gave (F_SETPIPE_SZ; capped by pipe-max-size).
static napi_value set_pipe_size(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = -1, bytes = 0;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &bytes) != napi_ok) {
    napi_throw_type_error(env, NULL, "setPipeSize(fd, bytes)");
    return NULL;
  }
  int size = fcntl(fd, F_SETPIPE_SZ, bytes);
  if (size < 0) return errno_error(env, "fcntl", "fcntl F_SETPIPE_SZ", errno);
  napi_value result;
  napi_create_int32(env, size, &result);
  return result;
}

// check() -> null when this kernel has what spawn() needs (pidfds), else why not.
static napi_value check(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  if (pidfd >= 0) {
    close(pidfd);
    napi_get_null(env, &result);
    return result;
  }
  char text[128];
  snprintf(text, sizeof text, "pidfd_open: %s (Linux 5.3 or later is needed)", strerror(errno));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor properties[] = {
      {"check", NULL, check, NULL, NULL, NULL, napi_default, NULL},
      {"spawn", NULL, spawn_command, NULL, NULL, NULL, napi_default, NULL},
      {"pipe", NULL, make_pipe, NULL, NULL, NULL, napi_default, NULL},
      {"setPipeSize", NULL, set_pipe_size, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}
