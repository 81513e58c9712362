from tailor.cli import main

raise SystemExit(main())
