from prunelora.cli import main

raise SystemExit(main())
