from ecgaudit._cli import main

main()
