from demo.walkthrough import main

raise SystemExit(main())
