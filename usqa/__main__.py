from usqa.cli import main

raise SystemExit(main())
