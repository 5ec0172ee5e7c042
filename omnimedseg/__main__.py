from omnimedseg.cli import main

main()
