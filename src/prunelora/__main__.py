"""`python -m prunelora`: Ctrl-C during start-up prints one line too (see `prunelora.cli.main`)."""

try:
    from prunelora.cli import main
except KeyboardInterrupt:  # pragma: no cover - a Ctrl-C within the first milliseconds
    import sys

    sys.stderr.write("prunelora: interrupted\n")
    raise SystemExit(130) from None

raise SystemExit(main())
