from divita.cli import main

raise SystemExit(main())
