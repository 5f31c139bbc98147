/* gproc: see gproc.h. */
#include "gproc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/wait.h>
#include <stdint.h>
#include <unistd.h>

static void child_stdio(int fd, int target)
{
	if (fd < 0)
		fd = open("/dev/null", O_RDWR);
	if (fd >= 0 && fd != target)
		dup2(fd, target);
	else if (fd == target)
		fcntl(fd, F_SETFD, 0);
}

static pid_t spawn(const char *const argv[], int in, int out, int errfd, int fixed_layout)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	if (fixed_layout)
		personality(PER_LINUX | ADDR_NO_RANDOMIZE);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	child_stdio(in, 0);
	child_stdio(out, 1);
	child_stdio(errfd, 2);
	setsid();
	execv(argv[0], (char *const *)(uintptr_t)argv);
	_exit(127);
}

pid_t gproc_spawn(const char *const argv[], int in, int out, int errfd)
{
	return spawn(argv, in, out, errfd, 0);
}

int gproc_wait(pid_t pid, int *status)
{
	int rc;
	while ((rc = waitpid(pid, status, 0)) < 0 && errno == EINTR)
		;
	return rc;
}

static int run(const char *const argv[], int in, int out, int errfd, int fixed_layout)
{
	int status;
	pid_t pid = spawn(argv, in, out, errfd, fixed_layout);
	if (pid < 0 || gproc_wait(pid, &status) < 0)
		return -1;
	return status;
}

int gproc_run(const char *const argv[], int in, int out, int errfd)
{
	return run(argv, in, out, errfd, 0);
}

int gproc_run_fixed_layout(const char *const argv[], int in, int out, int errfd)
{
	return run(argv, in, out, errfd, 1);
}

pid_t gproc_spawn_fixed_layout(const char *const argv[], int in, int out, int errfd)
{
	return spawn(argv, in, out, errfd, 1);
}
