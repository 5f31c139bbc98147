/* gproc: see gproc.h. */
#include "gproc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

pid_t gproc_spawn(const char *const argv[], int in, int out, int errfd)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
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

int gproc_wait(pid_t pid, int *status)
{
	int rc;
	while ((rc = waitpid(pid, status, 0)) < 0 && errno == EINTR)
		;
	return rc;
}

int gproc_run(const char *const argv[], int in, int out, int errfd)
{
	int status;
	pid_t pid = gproc_spawn(argv, in, out, errfd);
	if (pid < 0 || gproc_wait(pid, &status) < 0)
		return -1;
	return status;
}
