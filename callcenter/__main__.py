from callcenter.cli.main import main

main()
