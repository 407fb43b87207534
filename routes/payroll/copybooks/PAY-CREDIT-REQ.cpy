      * PAY-CREDIT-REQ: one salary credit of a corporate payroll file
      * (PR01: debit the company's payroll account, credit the employee's
      * account on the value date).  EBCDIC cp037.
      * ACCT-TYPE: I = CREDIT-ACCT is an IBAN, A = a domestic account number.
       01  PAY-CREDIT-REQ.
           05  TXN-CODE          PIC X(4).
           05  COMPANY-ID        PIC X(8).
           05  DEBIT-ACCT        PIC X(20).
           05  VALUE-DATE        PIC 9(8).
           05  PAY-REF           PIC X(35).
           05  ACCT-TYPE         PIC X(1).
           05  CREDIT-ACCT       PIC X(34).
           05  EMPLOYEE-NAME     PIC X(35).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
