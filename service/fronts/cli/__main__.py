from service.fronts.cli import main

main()
