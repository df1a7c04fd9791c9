/*
 * pause: the infra container of the real nodes' pods. CRI-O asks for a
 * pause image even with drop_infra_ctr (it checks that the image is there),
 * and the machines this project is tested on may pull only from the
 * loopback registry: hack/local/workload-images.sh builds this into one.
 * It sleeps until told to stop and reaps the zombies of a shared PID
 * namespace, as the Kubernetes pause container does.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	struct sigaction term = {.sa_handler = stop};
	struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};

	if (sigaction(SIGINT, &term, NULL) < 0 || sigaction(SIGTERM, &term, NULL) < 0 ||
	    sigaction(SIGCHLD, &child, NULL) < 0)
		return 1;
	for (;;)
		pause();
}
