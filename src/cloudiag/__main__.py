from cloudiag.cli import main

raise SystemExit(main())
