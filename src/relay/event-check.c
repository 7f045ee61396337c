/*
 * event-check.c - event.c from the command line, for the tests: reads one
 * notification payload per line on stdin and writes, per line, "ok " and
 * the frame the relay would send, or "refused".  (The relay refuses
 * payloads from other backends before it parses them, so these checks
 * could not be driven through a database.)
 */
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(void)
{
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		n;

	while ((n = getline(&line, &cap, stdin)) >= 0)
	{
		struct presence_event ev;
		struct jbuf frame = {0};

		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		if (event_parse(line, (size_t) n, &ev) || event_frame(&ev, &frame))
			puts("refused");
		else
			printf("ok %s\n", jbuf_text(&frame));
		jbuf_free(&frame);
	}
	free(line);
	return 0;
}
