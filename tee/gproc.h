/* gproc: child processes of the guest agent.  The agent blocks SIGCHLD
 * (it reads it from a signalfd), so every child gets an empty signal mask
 * and default dispositions back before exec; stdio are given as fds (-1:
 * /dev/null). */
#ifndef COCOD_GPROC_H
#define COCOD_GPROC_H

#include <sys/types.h>

/* Starts argv[0] (a path) with the given stdio; returns the pid or -1. */
pid_t gproc_spawn(const char *const argv[], int in, int out, int errfd);

/* Starts and waits for it; returns the wait status or -1. */
int gproc_run(const char *const argv[], int in, int out, int errfd);

/* waitpid that retries on EINTR. */
int gproc_wait(pid_t pid, int *status);

#endif
