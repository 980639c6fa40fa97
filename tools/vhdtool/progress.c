/* vhdtool: progress bar (percent, MiB/s, ETA) and clean interruption for
 * long operations.  On a terminal the bar is redrawn in place at most ten
 * times a second; elsewhere (-p into a log) one line every 10%.
 *
 * For the crash tests only: VHDTOOL_TEST_STEP_DELAY_US=N sleeps N µs at
 * every progress step, which stretches an operation over time so that a
 * SIGKILL at a random moment can land between any two of its steps. */
#include "vhdtool.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	(void)sig;
	got_signal = 1;
}

void vt_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

bool vt_interrupted(void)
{
	return got_signal != 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void vt_progress_init(struct vt_progress *p, const char *what, bool enabled)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->enabled = enabled;
	p->tty = isatty(2);
	p->start = p->last = now();
	p->last_pct = -1;
	{
		const char *d = getenv("VHDTOOL_TEST_STEP_DELAY_US");

		p->step_delay_us = d ? (unsigned)strtoul(d, NULL, 10) : 0;
	}
}

int vt_progress_cb(void *opaque, uint64_t done, uint64_t total)
{
	struct vt_progress *p = opaque;
	double t, secs, rate;
	int pct;

	if (p && p->step_delay_us)
		usleep(p->step_delay_us);
	if (got_signal)
		return 1;
	if (!p || !p->enabled)
		return 0;
	t = now();
	pct = total ? (int)(done * 100 / total) : 100;
	if (pct == 100 && p->last_pct == 100)
		return 0;	/* the end was shown already */
	if (p->tty ? (t - p->last < 0.1 && done < total)
		   : (pct / 10 == p->last_pct / 10 && done < total))
		return 0;
	p->last = t;
	p->last_pct = pct;
	secs = t - p->start;
	rate = secs > 0 ? (double)done / secs : 0;
	if (p->tty) {
		char bar[31];
		int fill = pct * 30 / 100;
		double eta = rate > 0 ? (double)(total - done) / rate : 0;

		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(30 - fill));
		bar[30] = '\0';
		fprintf(stderr, "\r%s [%s] %3d%%  %7.1f MiB/s%s%s  ETA %d:%02d ",
			p->what, bar, pct, rate / 1048576.0,
			p->extra[0] ? ", " : "", p->extra, (int)eta / 60,
			(int)eta % 60);
	} else {
		fprintf(stderr, "%s: %d%% (%.1f MiB/s%s%s)\n", p->what, pct,
			rate / 1048576.0, p->extra[0] ? ", " : "", p->extra);
	}
	return 0;
}

void vt_progress_end(struct vt_progress *p)
{
	if (p->enabled && p->tty && p->last_pct >= 0)
		fputc('\n', stderr);
}
