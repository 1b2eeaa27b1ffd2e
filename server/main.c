// main.c -- leanauthd entry point (being built).
int
main(void)
{
	return (0);
}
