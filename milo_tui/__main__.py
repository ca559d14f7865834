from milo_tui.cli import main

raise SystemExit(main())
