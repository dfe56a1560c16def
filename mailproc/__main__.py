from mailproc.cli import main

raise SystemExit(main())
